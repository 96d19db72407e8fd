package wordpress

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Pace is an adaptive limit on the requests in flight to one WordPress
// site, so that a storm of webhooks never floods a small site and a big
// one is not held back by a guess. It works like TCP congestion control or
// Netflix's Vegas and Gradient limiters: the limit starts at 1 and grows by
// one per round of requests while their latency stays near the site's
// baseline (a round's mean within 1.2 times it). A round further from it
// steps the limit back by one, or by a quarter past 1.5 times the
// baseline; an overload answer (a 5xx, 429 or a time-out) halves it. It
// never falls below 1 nor grows above its bound.
//
// Every step up is a probe. Latency that leaves the baseline means the
// site had no room for one more request: it only queued behind the others
// and slowed the site's own pages too. So the limit steps back and waits
// before it probes again, twice as long after each step back (from 2 s up
// to a minute), and at once again after a probe that held. On a site whose
// pages slow as soon as two of its requests overlap, the limit thus stays
// at 1 but for a few short probes; on a site with room it climbs a step
// per round.
//
// The baseline is kept per kind of request (method and route, ids left
// out; the client adds the answer's status): a user update is slower than
// a read, a create than a lookup that found the user, and comparing each
// with its own kind keeps a mix of them from looking like a slow site. It is the
// minimum over the last one to two minutes of the kind's smoothed latency
// (a moving average of its last few requests), not of single requests: on
// a busy machine one lucky fast answer would set a baseline that ordinary
// answers never meet again, and the limit would stay at 1. A round is at
// least 8 requests, so that one slow answer does not decide it. Several
// processes sharing one site each keep their own Pace; each sees the
// site's latency rise, so together they back off too.
//
// Pace is safe for concurrent use. It holds no Prometheus or other
// metrics: Limit says where it stands, for whoever exports it.
type Pace struct {
	bound int
	fixed bool // the limit stays at the bound (Config.FixedConcurrency)
	now   func() time.Time

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  list.List // of chan struct{}, first come first served
	kinds    map[string]*paceKind
	epoch    uint64 // bumped on every change of the limit
	round    paceRound
	// The probe in progress and the wait before the next one: after a
	// step up the limit was below is the limit before it, 0 when the
	// current round follows no step up.
	below     float64
	probeWait time.Duration // after the last failed probe; 0: none failed since a good one
	nextProbe time.Time     // no step up before this
}

// paceRound gathers the samples of one round: about as many requests as
// the limit, all started since the limit last changed.
type paceRound struct {
	n       int
	sum     float64 // sum of latency / baseline
	limited bool    // a request had to wait for a place during the round
}

// Pace's tuning. Rounds, not time, drive it: a round is as many completed
// requests as the limit allows in flight, so a slow site adapts slowly and
// a fast one quickly, and tests need no clock but the fake one.
const (
	paceStart     = 1
	paceGrowth    = 1.0  // added per round near the baseline
	paceHigh      = 1.5  // a round's mean latency above this many baselines backs off
	paceGrowBelow = 1.2  // and below this many baselines is near it: the limit may grow
	paceMinRound  = 8    // a round is at least this many requests
	paceSmoothing = 4    // a kind's smoothed latency moves 1/paceSmoothing of the way to each sample
	paceBackoff   = 0.75 // the limit is multiplied by this on high latency
	paceDrop      = 0.5  // and by this on an overload answer
	// After a failed probe the next waits paceProbeWait, doubling with
	// each failure up to paceProbeMax.
	paceProbeWait = 2 * time.Second
	paceProbeMax  = time.Minute
	// paceBaseWindow is the length of one of the two buckets of the
	// windowed minimum: a baseline reflects the last one to two of them.
	paceBaseWindow = time.Minute
)

// Outcome is what became of one request, for Pace.
type Outcome int

const (
	// Done is a request that WordPress answered (any status but the
	// overload ones): its latency is a sample.
	Done Outcome = iota
	// Overloaded is a 5xx, a 429 or a time-out: the limit halves.
	Overloaded
	// Ignored is a request that tells nothing of the site (cancelled by
	// its caller, say): it frees its place and is not a sample.
	Ignored
)

// NewPace returns a limit that starts at 1 and never exceeds bound (at
// least 1). now is the clock, time.Now when nil; tests pass a fake one.
func NewPace(bound int, now func() time.Time) *Pace {
	if bound < 1 {
		bound = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Pace{bound: bound, now: now, limit: min(paceStart, float64(bound)), kinds: map[string]*paceKind{}}
}

// Limit is the number of requests currently allowed in flight, from 1 to
// the bound.
func (p *Pace) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allowed()
}

// Bound is the most requests Pace ever allows in flight.
func (p *Pace) Bound() int { return p.bound }

func (p *Pace) allowed() int { return max(1, int(p.limit)) }

// Ticket is one admitted request. Call Done exactly once when it ends.
type Ticket struct {
	p     *Pace
	kind  string
	start time.Time
	epoch uint64
}

// Acquire waits until a request of kind (a method and route, no ids) may
// be sent, or ctx ends.
func (p *Pace) Acquire(ctx context.Context, kind string) (*Ticket, error) {
	p.mu.Lock()
	if p.inflight < p.allowed() && p.waiters.Len() == 0 {
		t := p.admit(kind)
		p.mu.Unlock()
		return t, nil
	}
	p.round.limited = true
	ready := make(chan struct{})
	el := p.waiters.PushBack(ready)
	p.mu.Unlock()
	select {
	case <-ready:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.admitted(kind), nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-ready: // admitted meanwhile: pass the place on
			p.inflight--
			p.wake()
		default:
			p.waiters.Remove(el)
		}
		return nil, ctx.Err()
	}
}

// tryAcquire admits a request of kind if a place is free, without waiting.
func (p *Pace) tryAcquire(kind string) *Ticket {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight < p.allowed() && p.waiters.Len() == 0 {
		return p.admit(kind)
	}
	p.round.limited = true
	return nil
}

// admit counts a new request in flight; p.mu is held.
func (p *Pace) admit(kind string) *Ticket {
	p.inflight++
	return p.admitted(kind)
}

// admitted makes the ticket of a request already counted in flight.
func (p *Pace) admitted(kind string) *Ticket {
	return &Ticket{p: p, kind: kind, start: p.now(), epoch: p.epoch}
}

// wake admits waiters while places are free; p.mu is held.
func (p *Pace) wake() {
	for p.inflight < p.allowed() && p.waiters.Len() > 0 {
		ready := p.waiters.Remove(p.waiters.Front()).(chan struct{})
		p.inflight++
		close(ready)
	}
}

// Done frees the request's place and feeds its outcome to the limit.
func (t *Ticket) Done(o Outcome) {
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	p.observe(t, o)
	p.wake()
}

// observe adjusts the limit; p.mu is held.
func (p *Pace) observe(t *Ticket, o Outcome) {
	if o == Ignored || p.fixed {
		return
	}
	now := p.now()
	// A request sent before the limit last changed says nothing of the
	// new limit: counting it would back off twice for one overload.
	stale := t.epoch != p.epoch
	if o == Overloaded {
		if !stale {
			p.below = 0
			p.set(p.limit * paceDrop)
		}
		return
	}
	latency := now.Sub(t.start)
	k := p.kinds[t.kind]
	if k == nil {
		k = &paceKind{smooth: latency}
		p.kinds[t.kind] = k
	}
	k.smooth += (latency - k.smooth) / paceSmoothing
	baseline := k.base.add(now, k.smooth)
	if stale {
		return
	}
	ratio := 1.0
	if baseline > 0 {
		ratio = float64(latency) / float64(baseline)
	}
	p.round.n++
	p.round.sum += ratio
	if p.round.n < max(p.allowed(), paceMinRound) {
		return
	}
	mean := p.round.sum / float64(p.round.n)
	probe := p.below
	p.below = 0
	switch {
	case mean >= paceGrowBelow && p.allowed() > 1:
		// Not near the baseline: requests queue at the site, and its
		// pages slow with them. Step back (to before the probe, or by
		// one; by a quarter when far from the baseline) and wait longer
		// before the next probe.
		p.probeWait = min(max(2*p.probeWait, paceProbeWait), paceProbeMax)
		p.nextProbe = now.Add(p.probeWait)
		next := p.limit - paceGrowth
		if probe > 0 {
			next = probe
		}
		if mean > paceHigh {
			next = min(next, p.limit*paceBackoff)
		}
		p.set(next)
	case mean < paceGrowBelow && p.round.limited && !now.Before(p.nextProbe) && p.limit < float64(p.bound):
		// Grow only when the limit held a request back: a quiet
		// stretch proves nothing about a higher limit.
		if probe > 0 {
			p.probeWait = 0 // the last step held: the next may follow at once
		}
		p.below = p.limit
		p.set(p.limit + paceGrowth)
	default:
		if probe > 0 && mean < paceGrowBelow {
			p.probeWait = 0
		}
		p.round = paceRound{limited: p.waiters.Len() > 0}
	}
}

// set moves the limit within [1, bound] and starts a new round.
func (p *Pace) set(limit float64) {
	p.limit = min(max(limit, 1), float64(p.bound))
	p.epoch++
	p.round = paceRound{limited: p.waiters.Len() > 0}
}

// paceKind is what Pace knows of one kind of request.
type paceKind struct {
	smooth time.Duration // moving average of the latency
	base   windowMin     // of smooth
}

// windowMin is the minimum of the samples of the current and the previous
// bucket of paceBaseWindow each.
type windowMin struct {
	start     time.Time // of the current bucket
	cur, prev time.Duration
}

// add records d at now and returns the windowed minimum.
func (w *windowMin) add(now time.Time, d time.Duration) time.Duration {
	switch {
	case w.start.IsZero() || now.Sub(w.start) >= 2*paceBaseWindow:
		w.start, w.cur, w.prev = now, d, 0
	case now.Sub(w.start) >= paceBaseWindow:
		w.start, w.prev, w.cur = now, w.cur, d
	default:
		w.cur = min(w.cur, d)
	}
	if w.prev > 0 {
		return min(w.cur, w.prev)
	}
	return w.cur
}
