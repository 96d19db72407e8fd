package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// The operator's commands on a running bridge's store: a webhook for a
// contact HighLevel does not know is refused and listed by "events list
// --failed"; once the contact exists, "events retry ID" (or --failed)
// applies it. Misuse prints the usage and exits 1.
func TestEventsCommands(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	p := w.start("bridge")
	client := &http.Client{Timeout: 30 * time.Second}
	late := highlevel.Contact{ID: testkit.RandomID(20), FirstName: "Late", Email: wordpresstest.UniqueEmail(t)}
	later := highlevel.Contact{ID: testkit.RandomID(20), FirstName: "Later", Email: wordpresstest.UniqueEmail(t)}
	ids := map[string]int64{}
	for _, c := range []highlevel.Contact{late, later} {
		status, r, err := w.webhook(client, p.url, "add", c.ID, 0)
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("add: %d %+v %v", status, r, err)
		}
		ids[c.ID] = r.EventID
	}
	waitStatus(t, w, ids[late.ID], bridge.StatusRefused)
	waitStatus(t, w, ids[later.ID], bridge.StatusRefused)

	r := w.cli("events", "list", "--failed")
	if r.code != 0 {
		t.Fatalf("events list --failed: exit %d: %s", r.code, r.stderr)
	}
	for _, c := range []highlevel.Contact{late, later} {
		line := lineWith(r.stdout, c.ID)
		for _, want := range []string{strconv.FormatInt(ids[c.ID], 10), "add", "refused", "HighLevel has no contact"} {
			if !strings.Contains(line, want) {
				t.Errorf("events list --failed: the line of contact %s lacks %q:\n%s", c.ID, want, r.stdout)
			}
		}
	}
	if !strings.HasPrefix(r.stdout, "ID") {
		t.Errorf("events list --failed has no header:\n%s", r.stdout)
	}

	misuse := []struct {
		args []string
		want string // in stderr, besides the usage
	}{
		{[]string{"events"}, "want list or retry"},
		{[]string{"events", "bogus"}, `unknown command "bogus"`},
		{[]string{"events", "retry"}, "give event ids or --failed"},
		{[]string{"events", "retry", "--failed", "1"}, "give event ids or --failed"},
		{[]string{"events", "list", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"bogus"}, `unknown command "bogus"`},
	}
	for _, m := range misuse {
		r := w.cli(m.args...)
		if r.code != 1 || !strings.Contains(r.stderr, m.want) || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("hlbridge %s: exit %d, stderr:\n%s\nwant exit 1, %q and the usage", strings.Join(m.args, " "), r.code, r.stderr, m.want)
		}
	}
	errorsWithout := []struct {
		args []string
		want string
	}{
		{[]string{"events", "retry", "abc"}, `"abc" is not an event id`},
		{[]string{"events", "retry", "999999"}, "no such event"},
		{[]string{"events", "list", "--limit", "0"}, "--limit"},
	}
	for _, m := range errorsWithout {
		r := w.cli(m.args...)
		if r.code != 1 || !strings.Contains(r.stderr, m.want) {
			t.Errorf("hlbridge %s: exit %d, stderr:\n%s\nwant exit 1 and %q", strings.Join(m.args, " "), r.code, r.stderr, m.want)
		}
	}
	if r := w.cli("--help"); r.code != 0 || !strings.Contains(r.stdout, "usage:") {
		t.Errorf("hlbridge --help: exit %d, stdout:\n%s", r.code, r.stdout)
	}

	// The cause is fixed: the contact now exists in HighLevel.
	w.hl.PutContact(late)
	r = w.cli("events", "retry", strconv.FormatInt(ids[late.ID], 10))
	if want := fmt.Sprintf("queued event %d again", ids[late.ID]); r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("events retry: exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
	ev := waitStatus(t, w, ids[late.ID], bridge.StatusDone)
	if ev.Result == nil || !ev.Result.Created {
		t.Errorf("retried event = %+v, want a created user", ev)
	}
	r = w.cli("events", "retry", strconv.FormatInt(ids[late.ID], 10))
	if r.code != 1 || !strings.Contains(r.stderr, "only failed or refused events are retried") {
		t.Errorf("events retry of a done event: exit %d, stderr %q", r.code, r.stderr)
	}

	w.hl.PutContact(later)
	r = w.cli("events", "retry", "--failed")
	if r.code != 0 || !strings.Contains(r.stdout, "queued 1 events again") {
		t.Fatalf("events retry --failed: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	waitStatus(t, w, ids[later.ID], bridge.StatusDone)
	if r := w.cli("events", "list", "--failed", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("events list --failed --json after the retries: exit %d, %q, want []", r.code, r.stdout)
	}
	w.checkUsers([]highlevel.Contact{late, later})
	if ids, err := w.wp.UsersByMeta(context.Background(), "highlevel_contact_id", late.ID); err != nil || len(ids) != 1 {
		t.Errorf("users of the retried contact: %v %v", ids, err)
	}
}

// waitStatus polls "hlbridge events list --json" until event id has status.
func waitStatus(t *testing.T, w *world, id int64, status string) bridge.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var last bridge.Event
		for _, e := range w.listEvents() {
			if e.ID == id {
				last = e
			}
		}
		if last.Status == status {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %d is %q after 30 s, want %s: %+v", id, last.Status, status, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// lineWith returns the first line of s containing sub.
func lineWith(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
