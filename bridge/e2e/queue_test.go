package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/bridgetest"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
)

// fastQueue retries quickly, so failure tests finish in seconds.
var fastQueue = queue.Config{RetryBase: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond}

// waitEvent waits until event id is no longer queued and returns it.
func (b *bundle) waitEvent(t *testing.T, id int64, timeout time.Duration) *bridge.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev, err := b.queue.Event(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != bridge.StatusQueued {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %d still queued after %s: %+v", id, timeout, ev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDrained waits until no event is queued.
func (b *bundle) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := b.queue.Events(context.Background(), bridge.EventFilter{Status: bridge.StatusQueued, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still queued after %s, e.g. %+v", timeout, evs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestQueueAcceptsThenApplies(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "role", "customer")
	if status != http.StatusAccepted || r.EventID == 0 || r.Status != "accepted" {
		t.Fatalf("add: %d %+v, want 202 with an event id", status, r)
	}
	ev := b.waitEvent(t, r.EventID, 30*time.Second)
	if ev.Status != bridge.StatusDone || ev.Result == nil || !ev.Result.Created {
		t.Fatalf("event = %+v", ev)
	}
	if u := b.user(t, c.Email); u.ID != ev.Result.UserID || !u.HasRole("customer") {
		t.Errorf("user = %+v", u)
	}
}

func TestQueueSyncWaitsForOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusOK || !r.Result.Created || r.Result.UserID == 0 {
		t.Fatalf("sync add: %d %+v", status, r)
	}
	status, r = b.wpf(t, "update", "noSuchContact0001", "sync", "true")
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "no contact") {
		t.Fatalf("sync update of an unknown contact: %d %+v", status, r)
	}
}

// gatedUsers holds every CreateUser and FindOrCreateUser (an add's
// lookup, which may create) until the gate opens.
type gatedUsers struct {
	bridge.Users
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedUsers) CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	g.wait()
	return g.Users.CreateUser(ctx, nu)
}

func (g *gatedUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	g.wait()
	return g.Users.FindOrCreateUser(ctx, key, value, nu)
}

func (g *gatedUsers) wait() {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
}

// A webhook that arrives while its contact's sync runs leads to exactly one
// more sync afterwards, which sees the change; the two never overlap.
func TestQueueRunsAgainForWebhookDuringRun(t *testing.T) {
	t.Parallel()
	g := &gatedUsers{entered: make(chan struct{}), gate: make(chan struct{})}
	b := setup(t, withQueue(fastQueue), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { g.Users = u; return g }
	})
	c := b.contact(t)
	_, first := b.wpf(t, "add", c.ID)
	<-g.entered // the first sync is inside WordPress, holding the contact
	c.Tags = []string{"changed while running"}
	b.hl.PutContact(c)
	var later []int64
	for range 5 {
		_, r := b.wpf(t, "update_tags", c.ID)
		later = append(later, r.EventID)
	}
	time.Sleep(300 * time.Millisecond) // room for a wrongly parallel second sync to start
	loads := 0
	for _, req := range b.hl.Requests() {
		if strings.HasPrefix(req.Path, "/contacts/"+c.ID) && req.Method == http.MethodGet {
			loads++
		}
	}
	if loads != 1 {
		t.Fatalf("%d contact loads while the first sync ran, want 1 (syncs of one contact overlapped)", loads)
	}
	close(g.gate)
	if ev := b.waitEvent(t, first.EventID, 30*time.Second); ev.Status != bridge.StatusDone {
		t.Fatalf("first event = %+v", ev)
	}
	for _, id := range later {
		if ev := b.waitEvent(t, id, 30*time.Second); ev.Status != bridge.StatusDone {
			t.Fatalf("event %d = %+v", id, ev)
		}
	}
	u := b.user(t, c.Email)
	if tags := b.meta(t, u.ID, "highlevel_tags")["highlevel_tags"].([]string); strings.Join(tags, "|") != "changed while running" {
		t.Errorf("tags = %v: the change made during the first sync was lost", tags)
	}
	loads = 0
	for _, req := range b.hl.Requests() {
		if strings.HasPrefix(req.Path, "/contacts/"+c.ID) && req.Method == http.MethodGet {
			loads++
		}
	}
	if loads != 2 {
		t.Errorf("%d syncs for 6 webhooks, want 2 (the first, and one for the 5 that came during it)", loads)
	}
}

// A bulk edit: many webhooks per contact arrive at once. Every contact
// ends with its final state and the site sees about one write per contact.
func TestQueueStormCoalesces(t *testing.T) {
	t.Parallel()
	counter := &bridgetest.CountingUsers{}
	b := setup(t, withQueue(queue.Config{PollInterval: 50 * time.Millisecond}), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { counter.Users = u; return counter }
	})
	b.hl.SetBurst(0, 0) // HighLevel's limit is tested on its own
	const contacts, perContact = 200, 10
	var cs []highlevel.Contact
	for i := range contacts {
		cs = append(cs, b.contact(t, func(c *highlevel.Contact) {
			c.FirstName = fmt.Sprintf("Storm%03d", i)
			c.Tags = []string{"bulk", fmt.Sprintf("t%d", i%7)}
		}))
	}
	actions := []string{"add", "update", "update_tags"}
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan [2]int)
	var failures atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				c, action := cs[w[0]], actions[w[1]%len(actions)]
				if w[1] == 0 {
					action = "add"
				}
				q := url.Values{"wpf_action": {action}, "access_key": {b.key}, "contact_id": {c.ID}, "n": {fmt.Sprint(w[1])}}
				resp, err := http.Post(b.url+"/?"+q.Encode(), "application/json", nil)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					failures.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for round := range perContact {
		for i := range contacts {
			work <- [2]int{i, round}
		}
	}
	close(work)
	wg.Wait()
	accepted := time.Since(start)
	if failures.Load() > 0 {
		t.Fatalf("%d webhooks were not accepted", failures.Load())
	}
	b.waitDrained(t, 3*time.Minute)
	drained := time.Since(start)
	for _, c := range cs {
		u := b.user(t, c.Email)
		m := b.meta(t, u.ID, "highlevel_contact_id", "highlevel_tags")
		stored, _ := b.hl.Contact(c.ID)
		if u.FirstName != c.FirstName || m["highlevel_contact_id"] != c.ID ||
			strings.Join(m["highlevel_tags"].([]string), ",") != strings.Join(stored.Tags, ",") {
			t.Fatalf("contact %s: user %+v meta %v", c.ID, u, m)
		}
		if ids, _ := b.wp.UsersByMeta(context.Background(), "highlevel_contact_id", c.ID); len(ids) != 1 {
			t.Fatalf("contact %s has %d users", c.ID, len(ids))
		}
	}
	t.Logf("storm: %d webhooks for %d contacts accepted in %s, drained in %s; WordPress writes: %d (creates %d)",
		contacts*perContact, contacts, accepted.Round(time.Millisecond), drained.Round(time.Millisecond),
		counter.Writes(), counter.Creates.Load())
	if w := counter.Writes(); w > contacts*11/10 {
		t.Errorf("%d WordPress writes for %d contacts, want within 10%%", w, contacts)
	}
}

// switchableProxy forwards TCP to WordPress while up; while down it does
// not listen, so connections are refused as with a stopped site.
type switchableProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
}

func newSwitchableProxy(t *testing.T, target string) *switchableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchableProxy{addr: ln.Addr().String(), target: target, ln: ln}
	go p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *switchableProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = copyConn(up, c) }()
			_, _ = copyConn(c, up)
		}()
	}
}

func (p *switchableProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

func (p *switchableProxy) up(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	go p.serve(ln)
}

// WordPress down while webhooks arrive: all are acknowledged, and all are
// applied once it is back.
func TestQueueWordPressDown(t *testing.T) {
	t.Parallel()
	target := strings.TrimPrefix(site.URL, "http://")
	proxy := newSwitchableProxy(t, target)
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.wordpress = "http://" + proxy.addr })
	proxy.down()
	var cs []highlevel.Contact
	var ids []int64
	for range 10 {
		c := b.contact(t)
		cs = append(cs, c)
		status, r := b.wpf(t, "add", c.ID)
		if status != http.StatusAccepted {
			t.Fatalf("add while WordPress is down: %d %+v", status, r)
		}
		ids = append(ids, r.EventID)
	}
	time.Sleep(1500 * time.Millisecond) // a few failed attempts
	ev, err := b.queue.Event(context.Background(), ids[0])
	if err != nil || ev.Status != bridge.StatusQueued || ev.Error == "" {
		t.Fatalf("while down: event = %+v, %v; want queued with the error noted", ev, err)
	}
	proxy.up(t)
	for _, id := range ids {
		if ev := b.waitEvent(t, id, 60*time.Second); ev.Status != bridge.StatusDone {
			t.Fatalf("event %d after WordPress returned: %+v", id, ev)
		}
	}
	for _, c := range cs {
		b.user(t, c.Email)
	}
}

// HighLevel answering 429: the sync waits as told, spends no attempt, and
// nothing is dropped.
func TestQueueHighLevelRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	b.hl.SetBurst(3, time.Second)
	var ids []int64
	var cs []highlevel.Contact
	for range 12 {
		c := b.contact(t)
		cs = append(cs, c)
		_, r := b.wpf(t, "add", c.ID)
		ids = append(ids, r.EventID)
	}
	for _, id := range ids {
		ev := b.waitEvent(t, id, 90*time.Second)
		if ev.Status != bridge.StatusDone || ev.Attempts != 1 {
			t.Fatalf("event %d = %+v, want done on its first attempt", id, ev)
		}
	}
	limited := 0
	for _, r := range b.hl.Requests() {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("HighLevel never answered 429: the test proves nothing")
	}
	for _, c := range cs {
		b.user(t, c.Email)
	}
	t.Logf("%d answers were 429", limited)
}

// A refused event shows in the admin API and, once the cause is fixed, a
// retry applies it.
func TestQueueFailedEventsReplay(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue))
	c := highlevel.Contact{ID: testkit.RandomID(20), FirstName: "Late", Email: strings.ToLower(testkit.RandomID(10)) + "@example.test"}
	_, r := b.wpf(t, "add", c.ID)
	if ev := b.waitEvent(t, r.EventID, 30*time.Second); ev.Status != bridge.StatusRefused {
		t.Fatalf("event for an unknown contact = %+v", ev)
	}
	admin := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, b.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+b.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, sb.String()
	}
	if status, body := admin("GET", "/admin/events?failed=true"); status != 200 || !strings.Contains(body, c.ID) {
		t.Fatalf("failed events: %d %s", status, body)
	}
	req, _ := http.NewRequest("GET", b.url+"/admin/events", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin API without the token: %v %v", resp.StatusCode, err)
	}
	if status, body := admin("POST", "/admin/events/999999/retry"); status != http.StatusNotFound {
		t.Fatalf("retry of an unknown event: %d %s", status, body)
	}
	b.hl.PutContact(c)
	if status, body := admin("POST", fmt.Sprintf("/admin/events/%d/retry", r.EventID)); status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", status, body)
	}
	if ev := b.waitEvent(t, r.EventID, 30*time.Second); ev.Status != bridge.StatusDone {
		t.Fatalf("retried event = %+v", ev)
	}
	b.user(t, c.Email)
	if status, _ := admin("POST", fmt.Sprintf("/admin/events/%d/retry", r.EventID)); status != http.StatusConflict {
		t.Errorf("retry of a done event: %d, want 409", status)
	}
}

func copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// Cleanup forgets expired app-event deliveries and old finished events,
// never a queued one.
func TestQueueCleanup(t *testing.T) {
	t.Parallel()
	signer, verifier := newAppSigner(t)
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.verifier = verifier })
	c := b.contact(t)
	_, r := b.wpf(t, "add", c.ID)
	b.waitEvent(t, r.EventID, 30*time.Second)
	ev := appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID)
	status, app := signer.post(t, b, ev, "")
	if status != http.StatusAccepted {
		t.Fatalf("app event: %d %+v", status, app)
	}
	b.waitEvent(t, app.EventID, 30*time.Second)
	ctx := context.Background()
	if d, e, err := b.queue.Cleanup(ctx, time.Now()); err != nil || d != 0 || e != 0 {
		t.Fatalf("cleanup now = %d deliveries, %d events, %v; want nothing removed", d, e, err)
	}
	d, e, err := b.queue.Cleanup(ctx, time.Now().Add(31*24*time.Hour))
	if err != nil || d != 1 || e != 2 {
		t.Fatalf("cleanup a month later = %d deliveries, %d events, %v; want 1 and 2", d, e, err)
	}
	// The same webhookId is new again once its delivery is forgotten.
	if s, r2 := signer.post(t, b, ev, ""); s != http.StatusAccepted || r2.EventID == app.EventID {
		t.Fatalf("after cleanup: %d %+v", s, r2)
	}
}

// /metrics counts webhooks, syncs and WordPress calls, behind the admin
// token, and shows no secret.
func TestMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.metrics = m })
	c := b.contact(t)
	_, r := b.wpf(t, "add", c.ID)
	b.waitEvent(t, r.EventID, 30*time.Second)
	b.call(t, http.MethodPost, "/?wpf_action=add&access_key=wrong", nil)
	resp, err := http.Get(b.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without the admin token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, b.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+b.admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	text := string(raw)
	for _, want := range []string{
		`hlbridge_webhooks_total{action="add",status="202"} 1`,
		`hlbridge_webhooks_total{action="add",status="401"} 1`,
		`hlbridge_syncs_total{outcome="done"} 1`,
		`hlbridge_wordpress_calls_total{call="find_or_create_user"} 1`,
		`hlbridge_events_queued 0`,
		`hlbridge_sync_duration_seconds_count 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{b.key, b.admin, site.AppPassword, b.hl.Token, c.ID, c.Email} {
		if strings.Contains(text, secret) {
			t.Errorf("metrics show %q", secret)
		}
	}
}

// River's producer reports its job counts every 5 s: at Debug, so an Info
// log stays quiet while the bridge idles.
func TestQueueRiverChatterIsDebug(t *testing.T) {
	t.Parallel()
	b := setup(t, payloadMode, withQueue(queue.Config{}))
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.logs.String(), "Producer job counts") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	var seen int
	for line := range strings.Lines(b.logs.String()) {
		if strings.Contains(line, `"component":"river"`) && strings.Contains(line, `"level":"INFO"`) {
			t.Errorf("River logged at Info: %s", line)
		}
		if strings.Contains(line, "Producer job counts") {
			seen++
			if !strings.Contains(line, `"level":"DEBUG"`) {
				t.Errorf("job counts not at Debug: %s", line)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no job counts from River within 15 s; cannot tell their level")
	}
}
