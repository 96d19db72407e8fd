package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// Two bridge processes share one queue in PostgreSQL, as two replicas
// behind a load balancer would. A storm split across both, with contacts
// changed in HighLevel mid-storm, ends with one user per contact in its
// final state: no duplicate, no lost update, and both processes worked.
func TestPostgresTwoProcesses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, postgresDB(t))
	cs := w.contacts(40)
	// One after the other: TestPostgresTwoProcessesStartTogether is about
	// starting at once.
	a := w.start("a")
	b := w.start("b")
	procs := []*proc{a, b}
	s := newStorm(w, cs, 10, 5, func(i int) bool { return i%2 == 0 })
	s.target = func(contact, n int) string { return procs[(contact+n)%2].url }
	start := time.Now()
	s.send(nil)
	if s.rejected != nil || s.unsent() > 0 {
		t.Fatalf("%d webhooks unacknowledged; refused: %v", s.unsent(), s.rejected[:min(len(s.rejected), 5)])
	}
	accepted := time.Since(start)
	w.waitDrained(2 * time.Minute)
	t.Logf("%d webhooks for %d contacts through 2 processes: accepted in %s, drained in %s",
		s.total(), len(cs), accepted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, p := range procs {
		n := strings.Count(p.logs.String(), `"msg":"synced"`)
		t.Logf("process %s ran %d syncs", p.name, n)
		if n == 0 {
			t.Errorf("process %s ran no sync: the queue was not shared", p.name)
		}
	}
	w.checkEvents(s.acked, s.total(), s.resent())
	w.checkUsers(cs)
}

// Two replicas started at the same moment on a new database (the first
// deployment) both come up: creating the store's tables is serialised.
func TestPostgresTwoProcessesStartTogether(t *testing.T) {
	t.Parallel()
	w := newWorld(t, postgresDB(t))
	procs := []*proc{launch(t, "a", w.env(), w.track), launch(t, "b", w.env(), w.track)}
	for _, p := range procs {
		if err := p.waitHealthy(60 * time.Second); err != nil {
			t.Errorf("process %s, started together with another on a new database, did not come up: %v\n%s",
				p.name, err, tail(p.logs.String(), 5))
		}
	}
}

// postgresDB is a throw-away database for a test (see testkit.PostgresDB).
func postgresDB(t *testing.T) string { return testkit.PostgresDB(t, "hlbridge_cmd_") }

// On PostgreSQL too, a sync waits out BRIDGE_SETTLE_WINDOW, and a
// sync=true webhook for a contact whose sync is waiting starts it at once.
func TestPostgresSettleWindow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, postgresDB(t))
	p := w.start("a", "BRIDGE_SETTLE_WINDOW=20s")
	cs := w.contacts(1)
	status, first, err := w.webhook(http.DefaultClient, p.url, "add", cs[0].ID, 0)
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("add: %d %+v %v", status, first, err)
	}
	time.Sleep(time.Second) // the window holds the sync back
	if ev, err := w.storeQueue().Event(context.Background(), first.EventID); err != nil || ev.Status != bridge.StatusQueued {
		t.Fatalf("event 1s into a 20s settle window = %+v (%v), want queued", ev, err)
	}
	start := time.Now()
	q := url.Values{"wpf_action": {"update"}, "access_key": {w.key}, "contact_id": {cs[0].ID}, "sync": {"true"}}
	resp, err := http.Post(p.url+"/?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || took > 10*time.Second {
		t.Fatalf("sync=true during the window: %d after %s, want 200 well before the window ends", resp.StatusCode, took)
	}
	if ev, err := w.storeQueue().Event(context.Background(), first.EventID); err != nil || ev.Status != bridge.StatusDone {
		t.Errorf("the waiting add after the sync=true update = %+v (%v), want done", ev, err)
	}
}
