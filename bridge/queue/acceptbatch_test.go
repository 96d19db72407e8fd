package queue

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

func TestInRunsArePowersOfTwoLargestFirst(t *testing.T) {
	t.Parallel()
	for rows := range 300 {
		next, last := 0, 1<<numRunLengths
		inRuns(rows, func(i, n, l int) error {
			if i != next || n != 1<<l || n > last {
				t.Fatalf("%d rows: run [%d, %d) (l %d) after %d rows and a run of %d", rows, i, i+n, l, next, last)
			}
			next, last = i+n, n
			return nil
		})
		if next != rows {
			t.Fatalf("%d rows: runs cover %d", rows, next)
		}
	}
}

// One intake transaction of 37 webhooks (runs of 32, 4 and 1 rows) gives
// each webhook what a transaction of its own would: its event with the
// contact's sequence number, the contact's pending request merged in
// arrival order, its newest state, one job per contact, and an app
// event's repeat (earlier in the batch or in an earlier one) answered as
// a duplicate of the first. On SQLite and, when one is given, PostgreSQL.
func TestAcceptBatchMatchesOneByOne(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "hlbridge.db")
			if name == "postgres" {
				dsn = testkit.PostgresDB(t, "hlbridge_queue_")
			}
			ctx := context.Background()
			store, err := OpenStore(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			q, err := New(store, nil, Config{SettleWindow: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			// An app event accepted before: its repeat is a duplicate.
			earlier := &acceptItem{req: bridge.Request{Action: bridge.ActionAdd, ContactID: "c00"}, d: bridge.Delivery{WebhookID: "w-old"}}
			if err := q.acceptTx(ctx, []*acceptItem{earlier}); err != nil {
				t.Fatal(err)
			}

			var items []*acceptItem
			want := map[string]*bridge.Request{} // each contact's merge, one webhook at a time
			count := map[string]int64{"c00": 1}
			want["c00"] = &earlier.req
			add := func(req bridge.Request, d bridge.Delivery, news bool) *acceptItem {
				it := &acceptItem{req: req, d: d}
				items = append(items, it)
				if news {
					r := req
					r.Contact = nil
					want[req.ContactID] = bridge.Merge(want[req.ContactID], &r)
					count[req.ContactID]++
				}
				return it
			}
			// Contacts in reverse order, some with several webhooks, so
			// that the sort and the merge order both matter.
			for i := 30; i >= 1; i-- {
				c := fmt.Sprintf("c%02d", i)
				add(bridge.Request{Action: bridge.ActionUpdate, ContactID: c,
					Contact: &highlevel.Contact{ID: c, Email: c + "@example.com", FirstName: "First"}}, bridge.Delivery{}, true)
				if i%10 == 0 {
					add(bridge.Request{Action: bridge.ActionAdd, ContactID: c, Role: "customer", SendNotification: true,
						Contact: &highlevel.Contact{ID: c, FirstName: "Second", Carried: []string{"firstName"}}}, bridge.Delivery{}, true)
				}
			}
			first := add(bridge.Request{Action: bridge.ActionUpdateTags, ContactID: "c05"}, bridge.Delivery{WebhookID: "w-new"}, true)
			repeat := add(bridge.Request{Action: bridge.ActionUpdateTags, ContactID: "c05"}, bridge.Delivery{WebhookID: "w-new"}, false)
			old := add(bridge.Request{Action: bridge.ActionAdd, ContactID: "c00"}, bridge.Delivery{WebhookID: "w-old"}, false)
			add(bridge.Request{Action: bridge.ActionUpdate, ContactID: "c31"}, bridge.Delivery{}, true)
			if len(items) != 37 {
				t.Fatalf("%d items, want 37", len(items))
			}
			if err := q.acceptTx(ctx, items); err != nil {
				t.Fatal(err)
			}

			if !repeat.dup || repeat.id != first.id || first.dup {
				t.Errorf("repeat in the batch: dup %v, id %d; want a duplicate of event %d", repeat.dup, repeat.id, first.id)
			}
			if !old.dup || old.id != earlier.id {
				t.Errorf("repeat of an earlier batch's event: dup %v, id %d; want a duplicate of event %d", old.dup, old.id, earlier.id)
			}
			// Every webhook that is news has its own event, with its
			// contact's sequence number at that point.
			seen := map[int64]bool{earlier.id: true}
			next := map[string]int64{"c00": 1}
			for _, it := range items {
				if it.dup {
					continue
				}
				next[it.req.ContactID]++
				if it.id == 0 || seen[it.id] {
					t.Fatalf("%s: event id %d is missing or repeated", it.req.ContactID, it.id)
				}
				seen[it.id] = true
				var contact string
				var seq int64
				if err := store.db.QueryRowContext(ctx, store.q(`SELECT contact_id, seq FROM hlbridge_event WHERE id = ?`), it.id).Scan(&contact, &seq); err != nil {
					t.Fatal(err)
				}
				if contact != it.req.ContactID || seq != next[contact] || it.seq != seq {
					t.Errorf("event %d: contact %s seq %d (item seq %d); want %s seq %d", it.id, contact, seq, it.seq, it.req.ContactID, next[contact])
				}
			}
			var events int
			if err := store.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hlbridge_event`).Scan(&events); err != nil {
				t.Fatal(err)
			}
			if events != 36 { // 35 of this batch, 1 before it
				t.Errorf("%d events stored, want 36", events)
			}

			for c, w := range want {
				var seq int64
				var pending, latest sql.NullString
				if err := store.db.QueryRowContext(ctx, store.q(`SELECT seq, pending, latest FROM hlbridge_contact WHERE contact_id = ?`), c).Scan(&seq, &pending, &latest); err != nil {
					t.Fatalf("%s: %v", c, err)
				}
				if seq != count[c] {
					t.Errorf("%s: seq %d, want %d", c, seq, count[c])
				}
				if got := decodeRequest(pending); !reflect.DeepEqual(got, w) {
					t.Errorf("%s: pending %s, want %+v", c, pending.String, w)
				}
				if c == "c00" || c == "c31" {
					if latest.Valid {
						t.Errorf("%s: no payload came, but its newest state is %s", c, latest.String)
					}
					continue
				}
				known := decodeContact(latest)
				wantFirst := "First"
				if strings.HasSuffix(c, "0") {
					wantFirst = "Second"
				}
				if known == nil || known.Email != c+"@example.com" || known.FirstName != wantFirst {
					t.Errorf("%s: newest state %s, want %s@example.com with first name %s", c, latest.String, c, wantFirst)
				}
			}
			var jobs, distinct int
			if err := store.db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT `+store.jobContact()+`) FROM river_job WHERE kind = '`+syncKind+`'`).Scan(&jobs, &distinct); err != nil {
				t.Fatal(err)
			}
			if jobs != 32 || distinct != 32 { // c00 … c31
				t.Errorf("%d jobs for %d contacts, want one each for 32", jobs, distinct)
			}
		})
	}
}
