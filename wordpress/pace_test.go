package wordpress

import (
	"container/heap"
	"context"
	"errors"
	"testing"
	"time"
)

// simServer is a model of a small site: workers PHP workers, each request
// taking base when the site is idle and proportionally longer when more
// requests are in flight than it has workers (they queue). While down it
// answers every request as overloaded (a 503) at once.
type simServer struct {
	workers  int
	base     time.Duration
	inflight int
	down     bool
}

func (s *simServer) latency() time.Duration {
	if s.inflight <= s.workers {
		return s.base
	}
	return s.base * time.Duration(s.inflight) / time.Duration(s.workers)
}

// simEvent is a request in flight that ends at at.
type simEvent struct {
	at      time.Time
	t       *Ticket
	outcome Outcome
}

type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// sim runs clients with an endless backlog of requests through their own
// paces against one server, on a fake clock, deterministically.
type sim struct {
	now    time.Time
	server *simServer
	paces  []*Pace
	events simQueue
	// demand caps the requests each client wants in flight; 0: endless.
	demand int
	// atLimit is the simulated time spent at each total limit.
	atLimit map[int]time.Duration
}

func newSim(server *simServer, bounds ...int) *sim {
	s := &sim{now: time.Unix(1_700_000_000, 0), server: server, atLimit: map[int]time.Duration{}}
	for _, b := range bounds {
		s.paces = append(s.paces, NewPace(b, func() time.Time { return s.now }))
	}
	return s
}

// run completes n requests, sending new ones whenever a pace lets it.
func (s *sim) run(n int) {
	for range n {
		s.fill()
		e := heap.Pop(&s.events).(simEvent)
		s.atLimit[s.total()] += e.at.Sub(s.now)
		s.now = e.at
		s.server.inflight--
		e.t.Done(e.outcome)
	}
	s.fill()
}

func (s *sim) fill() {
	for _, p := range s.paces {
		for s.demand == 0 || p.inflightNow() < s.demand {
			t := p.tryAcquire("GET /wp/v2/users/#")
			if t == nil {
				break
			}
			s.server.inflight++
			e := simEvent{at: s.now.Add(s.server.latency()), t: t}
			if s.server.down {
				e = simEvent{at: s.now.Add(time.Millisecond), t: t, outcome: Overloaded}
			}
			heap.Push(&s.events, e)
		}
	}
}

func (p *Pace) inflightNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

func (s *sim) total() int {
	n := 0
	for _, p := range s.paces {
		n += p.Limit()
	}
	return n
}

func TestPaceGrowsToTheBoundOnAFastSite(t *testing.T) {
	t.Parallel()
	s := newSim(&simServer{workers: 1000, base: 50 * time.Millisecond}, 16)
	if got := s.paces[0].Limit(); got != 1 {
		t.Fatalf("starting limit = %d, want 1", got)
	}
	s.run(500)
	if got := s.paces[0].Limit(); got != 16 {
		t.Errorf("limit on a site that never slows = %d, want the bound 16", got)
	}
}

func TestPaceSettlesNearTheSiteCapacity(t *testing.T) {
	t.Parallel()
	s := newSim(&simServer{workers: 4, base: 50 * time.Millisecond}, 16)
	s.run(2000)
	// 4 workers: latency is 1.3 baselines at 5.2 in flight and 1.8 at 7.2.
	lo, hi := 16, 0
	for range 200 {
		s.run(10)
		lo, hi = min(lo, s.total()), max(hi, s.total())
	}
	t.Logf("limit ranged over %d..%d", lo, hi)
	if lo < 3 || hi > 8 {
		t.Errorf("limit ranged over %d..%d on a 4-worker site, want within 3..8", lo, hi)
	}
}

// A site with one worker, or whose spare CPU one request uses up, slows
// as soon as two requests overlap: every step up to 2 is a failed probe.
// The limit stays at 1 but for probes that grow rarer, so the site's own
// visitors meet a second request of the bridge's only now and then.
func TestPaceProbesRarelyPastTheKnee(t *testing.T) {
	t.Parallel()
	s := newSim(&simServer{workers: 1, base: 30 * time.Millisecond}, 4)
	s.run(200)
	start := s.now
	clear(s.atLimit)
	s.run(10_000) // 5 minutes at 30 ms a request
	var total, above time.Duration
	for limit, d := range s.atLimit {
		total += d
		if limit > 1 {
			above += d
		}
	}
	t.Logf("%v simulated; %v of it above 1 (%.1f%%)", s.now.Sub(start), above, 100*float64(above)/float64(total))
	if got := s.paces[0].Limit(); got != 1 {
		t.Errorf("limit on a one-worker site = %d, want 1", got)
	}
	if frac := float64(above) / float64(total); frac > 0.02 {
		t.Errorf("limit above 1 for %.1f%% of the time on a one-worker site, want at most 2%%", 100*frac)
	}
	if got := s.paces[0].probeWait; got != paceProbeMax {
		t.Errorf("wait between probes after minutes of failed ones = %v, want the longest, %v", got, paceProbeMax)
	}
}

func TestPaceBacksOffOnOverloadAndRecovers(t *testing.T) {
	t.Parallel()
	srv := &simServer{workers: 1000, base: 20 * time.Millisecond}
	s := newSim(srv, 16)
	s.run(500)
	if got := s.total(); got != 16 {
		t.Fatalf("limit before the outage = %d, want 16", got)
	}
	srv.down = true
	s.run(40)
	if got := s.total(); got != 1 {
		t.Errorf("limit while the site answers 503 = %d, want 1", got)
	}
	srv.down = false
	s.run(500)
	if got := s.total(); got != 16 {
		t.Errorf("limit after the site recovered = %d, want 16", got)
	}
}

func TestPaceBacksOffWhenLatencyRises(t *testing.T) {
	t.Parallel()
	srv := &simServer{workers: 1000, base: 20 * time.Millisecond}
	s := newSim(srv, 16)
	s.run(500)
	// Another tenant takes the site's workers: at 16 in flight each
	// request now takes four baselines.
	srv.workers = 4
	s.run(300)
	if got := s.total(); got > 8 {
		t.Errorf("limit after the site slowed = %d, want at most 8", got)
	}
	// Once the site is fast again, the limit climbs back after the wait
	// its last step back set, at most a minute.
	srv.workers = 1000
	fast := s.now
	for s.now.Sub(fast) < paceProbeMax+10*time.Second {
		s.run(100)
	}
	if got := s.total(); got != 16 {
		t.Errorf("limit %s after the site is fast again = %d, want 16", s.now.Sub(fast).Round(time.Second), got)
	}
}

func TestPacesOfSeveralProcessesBackOffTogether(t *testing.T) {
	t.Parallel()
	s := newSim(&simServer{workers: 4, base: 50 * time.Millisecond}, 16, 16, 16)
	s.run(3000)
	hi := 0
	for range 200 {
		s.run(10)
		hi = max(hi, s.total())
	}
	t.Logf("together up to %d", hi)
	if hi > 10 {
		t.Errorf("three processes together allowed up to %d in flight on a 4-worker site, want at most 10", hi)
	}
}

func TestPaceDoesNotGrowWithoutDemand(t *testing.T) {
	t.Parallel()
	s := newSim(&simServer{workers: 1000, base: 50 * time.Millisecond}, 16)
	s.demand = 1 // one request at a time: the limit is never the constraint
	s.run(500)
	if got := s.paces[0].Limit(); got != 1 {
		t.Errorf("limit after serial requests = %d, want 1", got)
	}
}

func TestPaceAcquireWaitsForAPlace(t *testing.T) {
	t.Parallel()
	p := NewPace(4, nil)
	first, err := p.Acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Acquire(cancelled, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire past the limit with a cancelled context: err = %v, want context.Canceled", err)
	}
	got := make(chan *Ticket)
	go func() {
		t, _ := p.Acquire(context.Background(), "k")
		got <- t
	}()
	select {
	case <-got:
		t.Fatal("a second request was admitted past a limit of 1")
	default:
	}
	first.Done(Ignored)
	second := <-got
	if second == nil {
		t.Fatal("the waiting request was not admitted when the place was freed")
	}
	second.Done(Ignored)
	if n := p.inflightNow(); n != 0 {
		t.Errorf("in flight after all are done = %d, want 0", n)
	}
}

func TestWindowMinForgetsOldSamples(t *testing.T) {
	t.Parallel()
	var w windowMin
	t0 := time.Unix(0, 0)
	w.add(t0, 10*time.Millisecond)
	if got := w.add(t0.Add(paceBaseWindow+time.Second), 50*time.Millisecond); got != 10*time.Millisecond {
		t.Errorf("minimum one window later = %v, want the earlier 10ms", got)
	}
	if got := w.add(t0.Add(3*paceBaseWindow), 40*time.Millisecond); got != 40*time.Millisecond {
		t.Errorf("minimum two windows later = %v, want 40ms", got)
	}
}
