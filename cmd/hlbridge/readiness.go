package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// wordpressProbeEvery is how often, at most, /readyz asks WordPress itself
// when the bridge has had nothing to say to it lately. It is also how
// recent an answer must be to count without a probe.
const wordpressProbeEvery = 10 * time.Second

// wordpressTracker knows when WordPress last answered the bridge. It wraps
// the WordPress client's HTTP transport, so every call (syncs, the start-up
// checks, its own probes) counts; and when the bridge has been idle it
// probes the site with a cheap authenticated GET, at most every
// wordpressProbeEvery, rather than declaring WordPress gone.
//
// An answer counts when WordPress served it as a working site would: any
// status but 401 and 403 (the application password no longer works), 429
// (the site or its host is throttling us) and 5xx. A 404 or a 400 is
// WordPress working and saying no.
type wordpressTracker struct {
	next  http.RoundTripper
	probe func(ctx context.Context) error // e.g. wordpress.Client.Me
	now   func() time.Time

	mu        sync.Mutex
	okAt      time.Time // the last answer that counts
	failAt    time.Time // the last failure (no answer, or one that does not count)
	failErr   error     // why, for /readyz
	probeLock sync.Mutex
}

func newWordpressTracker(next http.RoundTripper) *wordpressTracker {
	if next == nil {
		// resty's own default, which this replaces: as many idle
		// connections per host as there are CPUs, plus one.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = runtime.GOMAXPROCS(0) + 1
		next = tr
	}
	return &wordpressTracker{next: next, now: time.Now}
}

// RoundTrip sends req and records the outcome.
func (t *wordpressTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil:
		// The client's own error says this better (without the URL's
		// query); this one is only a fallback.
		t.record(fmt.Errorf("WordPress did not answer %s %s", req.Method, req.URL.Path))
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		t.record(fmt.Errorf("WordPress refused the application password (%d)", resp.StatusCode))
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		t.record(fmt.Errorf("WordPress answered %d", resp.StatusCode))
	default:
		t.record(nil)
	}
	return resp, err
}

func (t *wordpressTracker) record(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.okAt = t.now()
		return
	}
	t.failAt, t.failErr = t.now(), err
}

// recent says what the latest outcome within wordpressProbeEvery was: an
// answer (known, nil) or a failure (known, why). Nothing that recent is
// not known: the caller probes.
func (t *wordpressTracker) recent() (known bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	switch {
	case t.failAt.After(t.okAt) && now.Sub(t.failAt) < wordpressProbeEvery:
		return true, t.failErr
	case !t.okAt.IsZero() && !t.failAt.After(t.okAt) && now.Sub(t.okAt) < wordpressProbeEvery:
		return true, nil
	}
	return false, nil
}

// Ready reports whether WordPress answered within wordpressProbeEvery,
// probing it when nothing that recent is known. Probes run one at a time,
// and a probe's outcome stands for wordpressProbeEvery, so an idle bridge
// asks WordPress at most that often however often /readyz is called.
func (t *wordpressTracker) Ready(ctx context.Context) error {
	if known, err := t.recent(); known {
		return err
	}
	t.probeLock.Lock()
	defer t.probeLock.Unlock()
	// Another caller may have probed while this one waited.
	if known, err := t.recent(); known {
		return err
	}
	if err := t.probe(ctx); err != nil {
		err = fmt.Errorf("WordPress did not answer: %w", err)
		t.record(err) // the client's error is clearer than the transport's
		return err
	}
	if known, err := t.recent(); known {
		return err
	}
	return errors.New("WordPress did not answer")
}
