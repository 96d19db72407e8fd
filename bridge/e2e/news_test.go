package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// The tests in this file hold the rule that no webhook carrying news is
// dropped: a HighLevel workflow webhook has no delivery id, so a repeat may
// be a new run with new data, and is applied (or coalesced into a sync that
// has not started), never answered "duplicate".

// tagsOf returns the user's tags meta.
func (b *bundle) tagsOf(t *testing.T, email string) []string {
	t.Helper()
	u := b.user(t, email)
	tags, _ := b.meta(t, u.ID, "highlevel_tags")["highlevel_tags"].([]string)
	return tags
}

// notDuplicate fails when a workflow webhook's answer is "duplicate".
func notDuplicate(t *testing.T, what string, status int, r reply) {
	t.Helper()
	if r.Status == "duplicate" || (status != http.StatusOK && status != http.StatusAccepted) {
		t.Fatalf("%s: %d %+v; want it accepted or applied", what, status, r)
	}
}

// The same URL after the contact changed in HighLevel brings the change.
func TestSameURLAfterAChangeIsApplied(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("first add: %d %+v", status, r)
	}
	c.FirstName = "Grace"
	b.hl.PutContact(c)
	status, r = b.wpf(t, "add", c.ID, "sync", "true")
	notDuplicate(t, "the same URL again", status, r)
	if u := b.user(t, c.Email); u.FirstName != "Grace" {
		t.Errorf("first name = %q after the repeated webhook, want Grace", u.FirstName)
	}
}

// A refused webhook, sent again after the contact was fixed, is applied.
func TestRefusedFixedSentAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	c := b.contact(t, func(c *highlevel.Contact) { c.Email = "" })
	status, r := b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "no email") {
		t.Fatalf("add without email: %d %+v, want refused", status, r)
	}
	c.Email = wordpresstest.UniqueEmail(t)
	b.hl.PutContact(c)
	status, r = b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("the same add after the fix: %d %+v, want the user created", status, r)
	}
}

// Tags A, B, A: the state applied last is A, in token and payload mode,
// whether the webhooks are spaced or queued together behind a running
// sync (where the third, byte-identical to the first, used to be dropped).
func TestTagsABA(t *testing.T) {
	t.Parallel()
	for _, payload := range []bool{false, true} {
		for _, together := range []bool{false, true} {
			name := fmt.Sprintf("payload=%v/together=%v", payload, together)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				g := &gatedUsers{entered: make(chan struct{}), gate: make(chan struct{})}
				opts := []option{withQueue(fastQueue), func(s *settings) {
					s.wrapUsers = func(u bridge.Users) bridge.Users { g.Users = u; return g }
				}}
				if payload {
					opts = append(opts, payloadMode)
				}
				b := setup(t, opts...)
				if !together {
					close(g.gate)
				}
				c := b.contact(t)
				send := func(tags string) (int, reply) {
					c.Tags = strings.Split(tags, ",")
					if !payload {
						b.hl.PutContact(c)
						return b.wpf(t, "add", c.ID, "sync", fmt.Sprint(!together))
					}
					body := map[string]any{"contact_id": c.ID, "email": c.Email, "first_name": c.FirstName, "tags": tags}
					return b.call(t, http.MethodPost, "/?wpf_action=add&sync="+fmt.Sprint(!together)+"&access_key="+b.key, body)
				}
				var ids []int64
				for i, tags := range []string{"alpha", "beta", "alpha"} {
					status, r := send(tags)
					notDuplicate(t, fmt.Sprintf("webhook %d (%s)", i+1, tags), status, r)
					ids = append(ids, r.EventID)
					if i == 0 && together {
						<-g.entered // the first sync holds the contact; the others wait together
					}
					if !together && strings.Join(b.tagsOf(t, c.Email), ",") != tags {
						t.Fatalf("after webhook %d tags = %v, want %s", i+1, b.tagsOf(t, c.Email), tags)
					}
				}
				if together {
					close(g.gate)
				}
				for _, id := range ids {
					if ev := b.waitEvent(t, id, 30*time.Second); ev.Status != bridge.StatusDone {
						t.Fatalf("event %d = %+v", id, ev)
					}
				}
				if got := b.tagsOf(t, c.Email); !slices.Equal(got, []string{"alpha"}) {
					t.Errorf("tags = %v, want [alpha]: the newest webhook must win", got)
				}
			})
		}
	}
}

// In payload mode a field a webhook left out keeps its WordPress value;
// one it sent empty clears it.
func TestPayloadAbsentFieldsAreKept(t *testing.T) {
	t.Parallel()
	b := setup(t, payloadMode, withQueue(fastQueue))
	id, email := testkit.RandomID(20), wordpresstest.UniqueEmail(t)
	post := func(action string, body map[string]any) {
		t.Helper()
		body["contact_id"] = id
		status, r := b.call(t, http.MethodPost, "/?wpf_action="+action+"&sync=true&access_key="+b.key, body)
		if status != http.StatusOK {
			t.Fatalf("%s %v: %d %+v", action, body, status, r)
		}
	}
	post("add", map[string]any{"email": email, "first_name": "Mary", "last_name": "Jackson", "company_name": "NASA", "tags": "vip"})
	// A tag change carries no name, no company: they stay.
	post("update_tags", map[string]any{"tags": "vip,gold"})
	post("update", map[string]any{"tags": "vip,gold"})
	u := b.user(t, email)
	m := b.meta(t, u.ID, "company", "highlevel_tags")
	if u.FirstName != "Mary" || u.LastName != "Jackson" || m["company"] != "NASA" {
		t.Errorf("after webhooks without names: user %q %q, company %v; want Mary Jackson, NASA", u.FirstName, u.LastName, m["company"])
	}
	if tags, _ := m["highlevel_tags"].([]string); strings.Join(tags, ",") != "vip,gold" {
		t.Errorf("tags = %v, want vip,gold", m["highlevel_tags"])
	}
	// A webhook without tags leaves them; an explicitly empty field clears.
	post("update", map[string]any{"last_name": "", "first_name": "Mary"})
	u = b.user(t, email)
	m = b.meta(t, u.ID, "highlevel_tags")
	if u.LastName != "" || u.FirstName != "Mary" {
		t.Errorf("explicitly empty last name: user %q %q, want Mary and no last name", u.FirstName, u.LastName)
	}
	if tags, _ := m["highlevel_tags"].([]string); strings.Join(tags, ",") != "vip,gold" {
		t.Errorf("tags = %v after a webhook without tags, want them kept", m["highlevel_tags"])
	}
}

// events retry in payload mode applies the newest payload known for the
// contact, not the retried event's old one.
func TestPayloadRetryAppliesNewestPayload(t *testing.T) {
	t.Parallel()
	b := setup(t, payloadMode, withQueue(fastQueue))
	id, email := testkit.RandomID(20), wordpresstest.UniqueEmail(t)
	status, first := b.call(t, http.MethodPost, "/?wpf_action=add&sync=true&access_key="+b.key,
		map[string]any{"contact_id": id, "first_name": "Old", "tags": "a"})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("add without email: %d %+v, want refused", status, first)
	}
	status, r := b.call(t, http.MethodPost, "/?wpf_action=update&sync=true&access_key="+b.key,
		map[string]any{"contact_id": id, "email": email, "first_name": "New"})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("update without a user: %d %+v, want refused", status, r)
	}
	if err := b.queue.Retry(context.Background(), first.EventID); err != nil {
		t.Fatal(err)
	}
	if ev := b.waitEvent(t, first.EventID, 30*time.Second); ev.Status != bridge.StatusDone || !ev.Result.Created {
		t.Fatalf("retried add = %+v", ev)
	}
	u := b.user(t, email)
	if u.FirstName != "New" || strings.Join(b.tagsOf(t, email), ",") != "a" {
		t.Errorf("retry applied %q with tags %v, want the newest payload: New, [a]", u.FirstName, b.tagsOf(t, email))
	}
}

// After a payload-mode run whose webhook carried a password (the password
// field, and a password-like field in customData), the user logs in with
// it, and neither the store nor the log holds it.
func TestPayloadPasswordIsNotStored(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "store.db")
	password, other := "Pw-"+testkit.RandomID(16), "Tok-"+testkit.RandomID(16)
	// The raw file too, once the store is closed (setup's cleanup, which runs
	// before this one, checkpoints the write-ahead log into it); SQLite's
	// secure_delete overwrites what was deleted.
	t.Cleanup(func() {
		for _, f := range []string{dsn, dsn + "-wal"} {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if bytes.Contains(raw, []byte(password)) || bytes.Contains(raw, []byte(other)) {
				t.Errorf("%s holds a password in its bytes", filepath.Base(f))
			}
		}
	})
	b := setup(t, payloadMode, withQueue(fastQueue), func(s *settings) {
		s.dsn = dsn
		s.cfg.PasswordField = "portal_password"
	})
	id, email := testkit.RandomID(20), wordpresstest.UniqueEmail(t)
	body := map[string]any{"contact_id": id, "email": email, "first_name": "Kay", "tags": "vip",
		"customData": map[string]any{"portal_password": password, "api_token": other, "plan": "gold"}}
	status, r := b.call(t, http.MethodPost, "/?wpf_action=add&sync=true&send_notification=true&access_key="+b.key, body)
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("add: %d %+v", status, r)
	}
	u := b.user(t, email)
	if !site.LoginWorks(t, u.Username, password) {
		t.Fatalf("the payload's password does not log in")
	}
	b.waitDrained(t, 30*time.Second)
	dump := dumpStore(t, dsn)
	for name, secret := range map[string]string{"password field": password, "password-like customData": other} {
		if strings.Contains(dump, secret) {
			t.Errorf("the store holds the %s", name)
		}
		if strings.Contains(b.logs.String(), secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if !strings.Contains(dump, "gold") {
		t.Errorf("the store lost the payload's other fields (no \"gold\"): the scan proves nothing")
	}
}

// dumpStore renders every value of every table of the SQLite store.
func dumpStore(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&out, "%v\t", v)
			}
			out.WriteString("\n")
		}
		rows.Close()
	}
	return out.String()
}
