package httpapi

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Defaults of the access-key failure limit.
const (
	// DefaultAuthFailuresPerMinute is how many wrong or missing keys one
	// client address may present per minute, after its burst, before it is
	// answered 429.
	DefaultAuthFailuresPerMinute = 5
	// DefaultAuthFailureBurst is how many failures in a row one address may
	// have before the per-minute rate applies.
	DefaultAuthFailureBurst = 5
	// DefaultAuthFailureClients bounds the addresses the limit remembers.
	DefaultAuthFailureClients = 10000
)

// Surfaces on which a secret is presented, as the failure metric labels them.
const (
	surfaceWorkflow = "workflow" // access_key on WP Fusion's URL
	surfaceHook     = "hook"     // X-Access-Key on /hooks/highlevel/*
	surfaceAdmin    = "admin"    // the admin bearer token
)

// failureLimiter slows down key guessing: it counts failed key checks per
// client address in a token bucket and says when an address has used up
// its allowance. It never sees requests that presented the right key, so
// HighLevel's deliveries from an address shared with a guesser always pass.
//
// It remembers at most max addresses; past that, the address seen least
// recently is forgotten (its bucket would have refilled first anyway).
// IPv6 addresses are counted per /64, the block one client usually holds,
// so rotating addresses inside it gains nothing.
type failureLimiter struct {
	every rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element // of *failureBucket
	lru   list.List                // most recently failed first
}

type failureBucket struct {
	key string
	lim *rate.Limiter
}

func newFailureLimiter(perMinute, burst, maxClients int) *failureLimiter {
	if perMinute <= 0 {
		perMinute = DefaultAuthFailuresPerMinute
	}
	if burst <= 0 {
		burst = DefaultAuthFailureBurst
	}
	if maxClients <= 0 {
		maxClients = DefaultAuthFailureClients
	}
	return &failureLimiter{every: rate.Limit(float64(perMinute) / 60), burst: burst, max: maxClients,
		now: time.Now, byKey: make(map[string]*list.Element)}
}

// fail records one failed key check from the address ip. It reports
// whether the address is over its allowance and, if so, how long until it
// has one failure to spend again.
func (l *failureLimiter) fail(ip string) (limited bool, wait time.Duration) {
	key := clientKey(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *failureBucket
	if e, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*failureBucket)
	} else {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			delete(l.byKey, old.Value.(*failureBucket).key)
			l.lru.Remove(old)
		}
		b = &failureBucket{key: key, lim: rate.NewLimiter(l.every, l.burst)}
		l.byKey[key] = l.lru.PushFront(b)
	}
	if b.lim.AllowN(now, 1) {
		return false, 0
	}
	// The failure is not taken from the bucket: an address that keeps
	// failing while limited waits for the rate, not for its own retries.
	r := b.lim.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return true, wait
}

// clients is the number of addresses remembered, for the tests.
func (l *failureLimiter) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// clientKey is the address a failure is counted against: the IPv4 address,
// or the /64 of an IPv6 address.
func clientKey(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return ip
	}
	if v4 := parsed.To4(); v4 != nil {
		return v4.String()
	}
	return parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// keyFailed answers a request whose key (or admin token) was missing or
// wrong. It is called only after the key check failed, so a right key is
// never slowed. The answer is 401 with msg, or 429 with Retry-After once
// the client address has failed too often; the 429 says nothing about the
// key presented, which was wrong either way.
func (s *Server) keyFailed(c *gin.Context, surface string, status int, msg string) {
	limited, wait := s.authLimit.fail(c.ClientIP())
	if limited {
		status = http.StatusTooManyRequests
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		msg = "too many failed access-key attempts from this address; try again later"
	}
	s.metrics.AuthFailure(surface, status)
	fail(c, status, msg)
}
