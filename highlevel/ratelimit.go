package highlevel

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HighLevel's rate-limit response headers.
const (
	headerMax            = "X-RateLimit-Max"
	headerRemaining      = "X-RateLimit-Remaining"
	headerInterval       = "X-RateLimit-Interval-Milliseconds"
	headerDailyLimit     = "X-RateLimit-Limit-Daily"
	headerDailyRemaining = "X-RateLimit-Daily-Remaining"
)

// RateLimitState is the last rate-limit budget HighLevel reported, so a
// caller can pace itself before it runs into a 429. HighLevel allows a burst
// of Max requests per Interval (100 per 10 s) and DailyMax per day (200,000),
// per app and location. A field HighLevel did not send keeps its previous
// value; ObservedAt is zero until a response carried any of the headers.
type RateLimitState struct {
	Max            int           // X-RateLimit-Max: burst size
	Remaining      int           // X-RateLimit-Remaining: left in the current burst window
	Interval       time.Duration // X-RateLimit-Interval-Milliseconds: burst window
	DailyMax       int           // X-RateLimit-Limit-Daily
	DailyRemaining int           // X-RateLimit-Daily-Remaining
	ObservedAt     time.Time     // when these values were read
}

// rateLimitTracker keeps the latest RateLimitState; safe for concurrent use.
type rateLimitTracker struct {
	mu    sync.Mutex
	state RateLimitState
}

func (t *rateLimitTracker) get() RateLimitState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// observe records whatever rate-limit headers h carries.
func (t *rateLimitTracker) observe(h http.Header, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := false
	setInt := func(dst *int, name string) {
		if n, ok := headerInt(h, name); ok {
			*dst = int(n)
			seen = true
		}
	}
	setInt(&t.state.Max, headerMax)
	setInt(&t.state.Remaining, headerRemaining)
	setInt(&t.state.DailyMax, headerDailyLimit)
	setInt(&t.state.DailyRemaining, headerDailyRemaining)
	if ms, ok := headerInt(h, headerInterval); ok {
		t.state.Interval = time.Duration(ms) * time.Millisecond
		seen = true
	}
	if seen {
		t.state.ObservedAt = now
	}
}

func headerInt(h http.Header, name string) (int64, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
