package highlevel_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
)

// catalogueRequests counts the fake's custom field catalogue requests.
func catalogueRequests(srv *highleveltest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Path == "/locations/"+srv.LocationID+"/customFields" {
			if r.Query != "model=contact" {
				panic("catalogue requested with query " + r.Query)
			}
			n++
		}
	}
	return n
}

func TestUpdateCustomFieldsUsesWriteShape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	level := b.srv.AddCustomField(highlevel.CustomField{Name: "Course Level"})
	credits := b.srv.AddCustomField(highlevel.CustomField{Name: "Credits", DataType: "NUMERICAL"})
	interests := b.srv.AddCustomField(highlevel.CustomField{Name: "Interests", DataType: "MULTIPLE_OPTIONS"})
	b.srv.PutContact(highlevel.Contact{ID: "c1", FirstName: "Ann", Tags: []string{"vip"},
		CustomFields: []highlevel.CustomFieldValue{{ID: level.ID, Value: "beginner"}}})

	err := b.client.UpdateCustomFields(context.Background(), "c1", []highlevel.FieldWrite{
		{ID: level.ID, Value: "advanced"},
		{Key: "contact.credits", Value: 12.5},
		{Key: "interests", Value: []string{"go", "sql"}},
	})
	if err != nil {
		t.Fatalf("UpdateCustomFields: %v", err)
	}

	writes := b.srv.Writes()
	if len(writes) != 1 {
		t.Fatalf("%d writes, want 1", len(writes))
	}
	wantBody := map[string]any{"customFields": []any{
		map[string]any{"id": level.ID, "field_value": "advanced"},
		map[string]any{"key": "credits", "field_value": 12.5},
		map[string]any{"key": "interests", "field_value": []any{"go", "sql"}},
	}}
	if writes[0].ContactID != "c1" || !reflect.DeepEqual(writes[0].Body, wantBody) {
		t.Errorf("write = %+v\nwant body %+v", writes[0], wantBody)
	}

	got, _ := b.srv.Contact("c1")
	for id, want := range map[string]string{level.ID: "advanced", credits.ID: "12.5", interests.ID: "go, sql"} {
		if v, ok := got.Custom(id); !ok || v != want {
			t.Errorf("after the write, Custom(%s) = %q, %v; want %q", id, v, ok, want)
		}
	}
	if got.FirstName != "Ann" || len(got.Tags) != 1 {
		t.Errorf("the write touched other fields: %+v", got)
	}
}

func TestUpdateCustomFieldsValidatesBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.UpdateCustomFields(ctx, "c1", nil); err != nil {
		t.Errorf("no fields: %v", err)
	}
	err := b.client.UpdateCustomFields(ctx, "c1", []highlevel.FieldWrite{{ID: "f1", Value: 1}, {Value: "orphan"}})
	if err == nil || !strings.Contains(err.Error(), "neither ID nor Key") {
		t.Errorf("field without ID or Key: %v", err)
	}
	if n := len(b.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestUpdateCustomFieldsUnknownContact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.srv.AddCustomField(highlevel.CustomField{Name: "A"})
	err := b.client.UpdateCustomFields(context.Background(), "missing", []highlevel.FieldWrite{{ID: f.ID, Value: "x"}})
	if !errors.Is(err, highlevel.ErrNotFound) || highlevel.Retryable(err) {
		t.Errorf("update of an unknown contact: %v, want a permanent ErrNotFound", err)
	}
}

func TestUpdateCustomFieldsNotAcknowledged(t *testing.T) {
	t.Parallel()
	c := stubClient(t, "pit-x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"succeded":false}`))
	})
	err := c.UpdateCustomFields(context.Background(), "c1", []highlevel.FieldWrite{{ID: "f", Value: "x"}})
	var api *highlevel.APIError
	if !errors.As(err, &api) {
		t.Errorf(`"succeded": false gave %v, want an *APIError`, err)
	}
}

func TestCustomFieldIDResolves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mine := b.srv.AddCustomField(highlevel.CustomField{Name: "My Field"}) // contact.my_field
	other := b.srv.AddCustomField(highlevel.CustomField{ID: "Xq3kP0aa", Name: "Other", FieldKey: "contact.other_key"})
	ctx := context.Background()
	tests := []struct {
		in      string
		want    string
		unknown bool
	}{
		{in: "my_field", want: mine.ID},
		{in: "contact.my_field", want: mine.ID},
		{in: " Contact.MY_FIELD ", want: mine.ID},
		{in: mine.ID, want: mine.ID},
		{in: "other_key", want: other.ID},
		{in: "Xq3kP0aa", want: "Xq3kP0aa"},
		{in: "My Field", unknown: true}, // display names are not keys
		{in: "nope", unknown: true},
		{in: "", unknown: true},
	}
	for _, tt := range tests {
		got, err := b.client.CustomFieldID(ctx, tt.in)
		if tt.unknown {
			if !errors.Is(err, highlevel.ErrUnknownCustomField) || highlevel.Retryable(err) {
				t.Errorf("CustomFieldID(%q) = %q, %v; want a permanent ErrUnknownCustomField", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CustomFieldID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if n := catalogueRequests(b.srv); n != 1 {
		t.Errorf("%d catalogue requests, want 1 (cached; misses right after a fetch do not refetch)", n)
	}

	fields, err := b.client.CustomFields(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []highlevel.CustomField{mine, other}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("CustomFields = %+v, want %+v", fields, want)
	}
}

func TestCatalogueCaching(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *highlevel.Config) { c.CatalogueTTL = 10 * time.Minute })
	known := b.srv.AddCustomField(highlevel.CustomField{Name: "Known"})
	ctx := context.Background()
	resolve := func(key string) (string, error) { return b.client.CustomFieldID(ctx, key) }

	steps := []struct {
		name         string
		advance      time.Duration
		before       func()
		key          string
		wantUnknown  bool
		wantRequests int
	}{
		{name: "first lookup fetches", key: "known", wantRequests: 1},
		{name: "hit is cached", advance: 10 * time.Second, key: "known", wantRequests: 1},
		{name: "miss on a catalogue younger than 30s does not refetch", key: "later", wantUnknown: true, wantRequests: 1},
		{name: "miss on a catalogue older than 30s refetches once", advance: 21 * time.Second, key: "later", wantUnknown: true, wantRequests: 2},
		{name: "repeated miss right after does not refetch", advance: time.Second, key: "later", wantUnknown: true, wantRequests: 2},
		{name: "field created in HighLevel is found on the next allowed refetch", advance: 30 * time.Second, key: "later", wantRequests: 3,
			before: func() { b.srv.AddCustomField(highlevel.CustomField{Name: "Later"}) }},
		{name: "new field is now cached", advance: time.Second, key: "later", wantRequests: 3},
		{name: "TTL expiry refetches on a hit", advance: 10 * time.Minute, key: "known", wantRequests: 4},
	}
	for _, s := range steps {
		b.clock.Advance(s.advance)
		if s.before != nil {
			s.before()
		}
		id, err := resolve(s.key)
		switch {
		case s.wantUnknown && !errors.Is(err, highlevel.ErrUnknownCustomField):
			t.Fatalf("%s: CustomFieldID(%q) = %q, %v; want ErrUnknownCustomField", s.name, s.key, id, err)
		case !s.wantUnknown && (err != nil || id == ""):
			t.Fatalf("%s: CustomFieldID(%q) = %q, %v", s.name, s.key, id, err)
		}
		if n := catalogueRequests(b.srv); n != s.wantRequests {
			t.Fatalf("%s: %d catalogue requests, want %d", s.name, n, s.wantRequests)
		}
	}
	if id, _ := resolve(known.ID); id != known.ID {
		t.Errorf("known id resolved to %q", id)
	}
}

func TestCatalogueKeepsStaleCopyWhenRefreshFails(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *highlevel.Config) { c.CatalogueTTL = time.Minute })
	f := b.srv.AddCustomField(highlevel.CustomField{Name: "A"})
	ctx := context.Background()
	if _, err := b.client.CustomFields(ctx); err != nil {
		t.Fatal(err)
	}

	b.clock.Advance(2 * time.Minute)
	b.srv.FailNext(1, http.StatusServiceUnavailable)
	id, err := b.client.CustomFieldID(ctx, "a")
	if err != nil || id != f.ID {
		t.Fatalf("CustomFieldID during an outage = %q, %v; want the stale catalogue's %q", id, err, f.ID)
	}
	if !strings.Contains(b.logs.String(), "refresh failed") {
		t.Error("no warning logged about the failed refresh")
	}
	if _, err := b.client.CustomFields(ctx); err != nil {
		t.Fatal(err)
	}
	if n := catalogueRequests(b.srv); n != 2 {
		t.Errorf("%d catalogue requests, want 2 (no new attempt right after a failure)", n)
	}
	b.clock.Advance(31 * time.Second)
	if _, err := b.client.CustomFields(ctx); err != nil {
		t.Fatal(err)
	}
	if n := catalogueRequests(b.srv); n != 3 {
		t.Errorf("%d catalogue requests, want 3 (retried after the back-off)", n)
	}
}

func TestCatalogueFailureWithoutCacheIsReturned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.FailNext(1, http.StatusBadGateway)
	_, err := b.client.CustomFieldID(context.Background(), "a")
	if err == nil || errors.Is(err, highlevel.ErrUnknownCustomField) || !highlevel.Retryable(err) {
		t.Errorf("CustomFieldID with HighLevel down: %v, want a retryable error that is not ErrUnknownCustomField", err)
	}
}

func TestCatalogueNeedsLocation(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *highlevel.Config) { c.LocationID = "" })
	if _, err := b.client.CustomFields(context.Background()); err == nil || !strings.Contains(err.Error(), "LocationID") {
		t.Errorf("CustomFields without a location: %v", err)
	}
	if n := len(b.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestCatalogueWrongLocationIsForbidden(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *highlevel.Config) { c.LocationID = "someOtherLocation123" })
	_, err := b.client.CustomFields(context.Background())
	if !errors.Is(err, highlevel.ErrForbidden) || highlevel.Retryable(err) {
		t.Errorf("catalogue of another location: %v, want a permanent ErrForbidden", err)
	}
}

func TestConcurrentMissesFetchTheCatalogueOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.srv.AddCustomField(highlevel.CustomField{Name: "A"})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			id, err := b.client.CustomFieldID(context.Background(), "contact.a")
			if err == nil && id != f.ID {
				err = errors.New("wrong id " + id)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := catalogueRequests(b.srv); n != 1 {
		t.Errorf("%d catalogue requests for 20 concurrent lookups, want 1", n)
	}
}

func TestCatalogueWaitHonoursContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.client.CustomFieldID(ctx, "a")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CustomFieldID with a cancelled context: %v", err)
	}
}

// HighLevel's error answers can quote what a request wrote. A value marked
// Secret (a password returned to a custom field) never reaches the error,
// whichever status echoes it, and the error still says what happened.
func TestUpdateCustomFieldsKeepsSecretsOutOfErrors(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			field := b.srv.AddCustomField(highlevel.CustomField{Name: "WP Password"})
			b.srv.PutContact(highlevel.Contact{ID: "c1"})
			// Characters JSON escapes (<, >, &, ") and a length that truncation would cut.
			secret := `pw<&>"` + strings.Repeat("s3cr3t", 60)
			b.srv.FailWrites(1, status, true)
			err := b.client.UpdateCustomFields(context.Background(), "c1", []highlevel.FieldWrite{
				{ID: field.ID, Value: secret, Secret: true},
				{Key: "plain", Value: "visible-value"},
			})
			var api *highlevel.APIError
			if !errors.As(err, &api) || api.Status != status {
				t.Fatalf("err = %v, want an APIError with status %d", err, status)
			}
			for _, part := range []string{secret, "s3cr3ts3cr3t", `pw\u003c`, "pw<"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("the error holds (part of) the secret: %s", err)
				}
			}
			if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "visible-value") {
				t.Errorf("the error lost what HighLevel said: %s", err)
			}
		})
	}
}
