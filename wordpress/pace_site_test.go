package wordpress_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/wordpress"
)

// TestPaceOnTheRealSite floods the test WordPress (4 PHP workers) with 24
// concurrent readers through one client bounded at 16 requests in flight:
// the limit grows from 1 and settles below the bound, and the site's home
// page stays responsive. Generous: the machine is shared.
func TestPaceOnTheRealSite(t *testing.T) {
	c, err := wordpress.New(wordpress.Config{URL: site.URL, Username: site.Username, AppPassword: site.AppPassword, MaxConcurrent: 16})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConcurrencyLimit(); got != 1 {
		t.Fatalf("limit before any request = %d, want 1", got)
	}
	me, err := c.Me(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	idle := pageTimes(t, 5)

	loadCtx, stop := context.WithTimeout(context.Background(), 8*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var requests, failures, peak int
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				_, err := c.UserByID(loadCtx, me.ID)
				mu.Lock()
				requests++
				if err != nil && loadCtx.Err() == nil {
					failures++
				}
				peak = max(peak, c.ConcurrencyLimit())
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	busy := pageTimes(t, 5)
	wg.Wait()
	final := c.ConcurrencyLimit()
	t.Logf("%d requests, %d failed; limit peaked at %d, ended at %d of 16; home page median idle %v, under load %v",
		requests, failures, peak, final, idle, busy)
	if failures > 0 {
		t.Errorf("%d of %d requests failed under the paced load", failures, requests)
	}
	if peak < 2 {
		t.Errorf("limit never grew above its start of 1 (peak %d)", peak)
	}
	if final >= 16 {
		t.Errorf("limit after the load = %d, want below the bound 16 on a 4-worker site", final)
	}
	if busy > max(5*idle, 2*time.Second) {
		t.Errorf("home page median under load %v, idle %v: the site was flooded", busy, idle)
	}
}

// pageTimes fetches the site's home page n times, one after another, and
// returns the median time.
func pageTimes(t *testing.T, n int) time.Duration {
	t.Helper()
	var took []time.Duration
	for range n {
		start := time.Now()
		resp, err := http.Get(site.URL + "/")
		if err != nil {
			t.Fatalf("home page: %v", err)
		}
		resp.Body.Close()
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[n/2]
}
