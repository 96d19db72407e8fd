package highlevel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

// Paging a tag search with searchAfter returns every tagged contact once,
// oldest first, and never sends "page".
func TestSearchContactsPagesWithSearchAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]bool{}
	for i := range 25 {
		c := highlevel.Contact{Email: fmt.Sprintf("c%d@example.com", i),
			DateAdded: base.Add(time.Duration(i%7) * time.Minute).Format("2006-01-02T15:04:05.000Z")}
		if i%3 != 0 {
			c.Tags = []string{"Member"}
		}
		stored := b.srv.PutContact(c)
		if i%3 != 0 {
			want[stored.ID] = true
		}
	}
	ctx := context.Background()
	q := highlevel.ContactSearch{PageLimit: 5, Filters: []highlevel.SearchFilter{{Field: "tags", Operator: "eq", Value: "member"}}}
	seen := map[string]bool{}
	var lastAdded string
	pages := 0
	for {
		page, err := b.client.SearchContacts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if page.Total != len(want) {
			t.Errorf("total %d, want %d", page.Total, len(want))
		}
		for _, c := range page.Contacts {
			if seen[c.ID] || !want[c.ID] {
				t.Errorf("contact %s: seen before %v, tagged %v", c.ID, seen[c.ID], want[c.ID])
			}
			if c.DateAdded < lastAdded {
				t.Errorf("contact %s added %s after one added %s: not sorted by dateAdded", c.ID, c.DateAdded, lastAdded)
			}
			seen[c.ID], lastAdded = true, c.DateAdded
		}
		if page.Next == nil {
			break
		}
		q.SearchAfter = page.Next
	}
	if len(seen) != len(want) || pages != 4 {
		t.Errorf("saw %d of %d contacts in %d pages, want 4", len(seen), len(want), pages)
	}
	for _, body := range b.srv.Searches() {
		if _, ok := body["page"]; ok {
			t.Errorf("a search used page: %v", body)
		}
		if body["locationId"] != b.srv.LocationID {
			t.Errorf("a search had locationId %v", body["locationId"])
		}
	}
}

// A range on dateUpdated keeps the contacts changed since a date.
func TestSearchContactsDateRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := b.srv.PutContact(highlevel.Contact{Email: "old@example.com", DateUpdated: "2025-12-31T23:59:59.000Z"})
	recent := b.srv.PutContact(highlevel.Contact{Email: "new@example.com", DateUpdated: "2026-01-02T00:00:00.000Z"})
	page, err := b.client.SearchContacts(context.Background(), highlevel.ContactSearch{Filters: []highlevel.SearchFilter{
		{Field: "dateUpdated", Operator: "range", Value: map[string]string{"gte": "2026-01-02T00:00:00Z"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Contacts) != 1 || page.Contacts[0].ID != recent.ID || page.Next != nil {
		t.Errorf("got %d contacts (next %v), want only %s and not %s", len(page.Contacts), page.Next, recent.ID, old.ID)
	}
}

// The fake answers past its burst with a 429 the client reports as a rate
// limit; a page limit over 500 is refused before anything is sent.
func TestSearchContactsErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.client.SearchContacts(ctx, highlevel.ContactSearch{PageLimit: 501}); err == nil {
		t.Error("page limit 501 accepted")
	}
	b.srv.SetBurst(1, time.Minute)
	if _, err := b.client.SearchContacts(ctx, highlevel.ContactSearch{}); err != nil {
		t.Fatal(err)
	}
	_, err := b.client.SearchContacts(ctx, highlevel.ContactSearch{})
	var rl *highlevel.RateLimitError
	if !errors.As(err, &rl) {
		t.Errorf("second search over a burst of 1: %v, want a RateLimitError", err)
	}
	reqs := b.srv.Requests()
	if n := len(reqs); n != 2 || reqs[1].Status != http.StatusTooManyRequests {
		t.Errorf("requests %+v, want two, the second a 429", reqs)
	}
}
