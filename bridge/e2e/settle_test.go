package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/bridgetest"
	"github.com/hlbridge/hlbridge/bridge/queue"
)

// settleQueue waits window after a contact's first webhook before its sync.
func settleQueue(window time.Duration) queue.Config {
	qc := fastQueue
	qc.SettleWindow = window
	return qc
}

// contactLoads counts the syncs of contact id: each loads it from HighLevel once.
func (b *bundle) contactLoads(id string) int {
	n := 0
	for _, req := range b.hl.Requests() {
		if strings.HasPrefix(req.Path, "/contacts/"+id) && req.Method == http.MethodGet {
			n++
		}
	}
	return n
}

// A bulk edit's burst for one contact, within the settle window, ends in
// one sync and one WordPress write, which carries the last state.
func TestSettleWindowCollapsesBurst(t *testing.T) {
	t.Parallel()
	counter := &bridgetest.CountingUsers{}
	b := setup(t, withQueue(settleQueue(time.Second)), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { counter.Users = u; return counter }
	})
	c := b.contact(t)
	start := time.Now()
	var ids []int64
	for i := range 8 {
		c.FirstName = fmt.Sprintf("Burst%d", i)
		b.hl.PutContact(c)
		action := "update"
		if i == 0 {
			action = "add"
		}
		status, r := b.wpf(t, action, c.ID)
		if status != http.StatusAccepted {
			t.Fatalf("%s: %d %+v", action, status, r)
		}
		ids = append(ids, r.EventID)
		time.Sleep(80 * time.Millisecond) // spread over the window, as a bulk edit's webhooks are
	}
	if took := time.Since(start); took > 950*time.Millisecond {
		t.Skipf("the burst took %s, not within the 1s window (a loaded machine)", took)
	}
	for _, id := range ids {
		if ev := b.waitEvent(t, id, 30*time.Second); ev.Status != bridge.StatusDone {
			t.Fatalf("event %d = %+v", id, ev)
		}
	}
	if u := b.user(t, c.Email); u.FirstName != "Burst7" {
		t.Errorf("first name = %q, want the last of the burst, Burst7", u.FirstName)
	}
	if n := b.contactLoads(c.ID); n != 1 {
		t.Errorf("%d syncs for a burst of 8 webhooks within the window, want 1", n)
	}
	if w := counter.Writes(); w != 1 {
		t.Errorf("%d WordPress writes for the burst, want 1 (creates %d, updates %d, meta %d)",
			w, counter.Creates.Load(), counter.Updates.Load(), counter.Metas.Load())
	}
}

// A lone webhook is applied as without the window, only after it.
func TestSettleWindowLoneWebhook(t *testing.T) {
	t.Parallel()
	const window = time.Second
	b := setup(t, withQueue(settleQueue(window)))
	c := b.contact(t)
	start := time.Now()
	status, r := b.wpf(t, "add", c.ID, "role", "customer")
	if status != http.StatusAccepted {
		t.Fatalf("add: %d %+v", status, r)
	}
	ev := b.waitEvent(t, r.EventID, 30*time.Second)
	if ev.Status != bridge.StatusDone || ev.Result == nil || !ev.Result.Created {
		t.Fatalf("event = %+v", ev)
	}
	if took := time.Since(start); took < window {
		t.Errorf("the sync finished %s after the webhook, inside the %s settle window", took, window)
	}
	if u := b.user(t, c.Email); u.ID != ev.Result.UserID || !u.HasRole("customer") {
		t.Errorf("user = %+v", u)
	}
}

// sync=true skips the window: alone, and when its contact's sync is
// already waiting out the window.
func TestSettleWindowSkippedBySync(t *testing.T) {
	t.Parallel()
	const window = 20 * time.Second // far longer than any answer below may take
	b := setup(t, withQueue(settleQueue(window)))

	c := b.contact(t)
	start := time.Now()
	status, r := b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("sync add: %d %+v", status, r)
	}
	t.Logf("a lone sync=true add answered in %s", time.Since(start))

	d := b.contact(t)
	status, first := b.wpf(t, "add", d.ID)
	if status != http.StatusAccepted {
		t.Fatalf("add: %d %+v", status, first)
	}
	d.FirstName = "Changed"
	b.hl.PutContact(d)
	start = time.Now()
	status, r = b.wpf(t, "update", d.ID, "sync", "true")
	took := time.Since(start)
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("sync update coalesced into a waiting add: %d %+v, want 200 with the user created", status, r)
	}
	t.Logf("a sync=true update joining a waiting add answered in %s", took)
	if took >= 10*time.Second {
		t.Errorf("sync=true answered after %s: it waited out the settle window", took)
	}
	if ev := b.waitEvent(t, first.EventID, 5*time.Second); ev.Status != bridge.StatusDone {
		t.Errorf("the earlier add = %+v, want done with the same sync", ev)
	}
	if u := b.user(t, d.Email); u.FirstName != "Changed" {
		t.Errorf("first name = %q, want Changed", u.FirstName)
	}
}
