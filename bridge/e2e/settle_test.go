package e2e_test

import (
	"context"
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

// A burst longer than the window, whose webhooks come closer together than
// it, also ends in one sync: each webhook moves the waiting sync to a
// window after itself.
func TestSettleWindowWaitsForTheBurstToPause(t *testing.T) {
	t.Parallel()
	const window, gap = time.Second, 300 * time.Millisecond
	counter := &bridgetest.CountingUsers{}
	b := setup(t, withQueue(settleQueue(window)), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { counter.Users = u; return counter }
	})
	c := b.contact(t)
	var ids []int64
	var last time.Time
	for i := range 8 {
		if i > 0 && time.Since(last) > window-gap {
			t.Skipf("webhook %d came %s after the one before, not within the window (a loaded machine)", i, time.Since(last))
		}
		c.FirstName = fmt.Sprintf("Long%d", i)
		b.hl.PutContact(c)
		last = time.Now()
		status, r := b.wpf(t, "add", c.ID)
		if status != http.StatusAccepted {
			t.Fatalf("add: %d %+v", status, r)
		}
		ids = append(ids, r.EventID)
		if n := b.contactLoads(c.ID); n != 0 {
			t.Fatalf("the contact was synced %d times while its burst went on (webhook %d, %s after the first)", n, i, time.Duration(i)*gap)
		}
		time.Sleep(gap)
	}
	for _, id := range ids {
		if ev := b.waitEvent(t, id, 30*time.Second); ev.Status != bridge.StatusDone {
			t.Fatalf("event %d = %+v", id, ev)
		}
	}
	if took := time.Since(last); took < window {
		t.Errorf("the sync finished %s after the last webhook, inside the window after it", took)
	}
	if u := b.user(t, c.Email); u.FirstName != "Long7" {
		t.Errorf("first name = %q, want the last of the burst, Long7", u.FirstName)
	}
	if n, w := b.contactLoads(c.ID), counter.Writes(); n != 1 || w != 1 {
		t.Errorf("%d syncs and %d WordPress writes for a burst of 8 webhooks %s apart, want 1 and 1", n, w, gap)
	}
}

// A contact whose webhooks never pause for a window is still synced, 10
// windows after the first of them, while they go on.
func TestSettleWindowHasALimit(t *testing.T) {
	t.Parallel()
	const window = 100 * time.Millisecond
	b := setup(t, withQueue(settleQueue(window)))
	c := b.contact(t)
	start := time.Now()
	var first int64
	for i := 0; time.Since(start) < 6*time.Second; i++ {
		c.FirstName = fmt.Sprintf("Busy%d", i)
		b.hl.PutContact(c)
		status, r := b.wpf(t, "add", c.ID)
		if status != http.StatusAccepted {
			t.Fatalf("add: %d %+v", status, r)
		}
		if i == 0 {
			first = r.EventID
		}
		ev, err := b.queue.Event(context.Background(), first)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status == bridge.StatusDone {
			t.Logf("the first webhook was applied %s after it, while its contact's webhooks went on every %s", time.Since(start), window/2)
			return
		}
		time.Sleep(window / 2)
	}
	t.Errorf("the first webhook was not applied in %s while its contact's webhooks went on every %s; want it within about 10 windows (%s)",
		time.Since(start), window/2, 10*window)
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
