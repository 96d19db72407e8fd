package httpapi

import (
	"fmt"
	"testing"
	"time"
)

// The failure limit lets a burst through, then one failure per 12 s at 5
// a minute, per address; it forgets the least recently seen address when
// full, and counts an IPv6 /64 as one client.
func TestFailureLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newFailureLimiter(5, 5, 3)
	l.now = func() time.Time { return now }
	for i := range 5 {
		if limited, _ := l.fail("192.0.2.1"); limited {
			t.Fatalf("failure %d limited within the burst", i+1)
		}
	}
	limited, wait := l.fail("192.0.2.1")
	if !limited || wait <= 0 || wait > 12*time.Second {
		t.Fatalf("6th failure: limited %v, wait %s; want limited with a wait up to 12s", limited, wait)
	}
	// Failing while limited does not push the wait further out.
	if _, again := l.fail("192.0.2.1"); again != wait {
		t.Errorf("wait grew from %s to %s while limited", wait, again)
	}
	if limited, _ := l.fail("192.0.2.2"); limited {
		t.Error("another address is limited too")
	}
	now = now.Add(wait)
	if limited, _ := l.fail("192.0.2.1"); limited {
		t.Errorf("still limited after waiting %s", wait)
	}
	if limited, _ := l.fail("192.0.2.1"); !limited {
		t.Error("a refilled token gave more than one failure")
	}

	// IPv6: one bucket per /64.
	for i := range 5 {
		l.fail(fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if limited, _ := l.fail("2001:db8:1:2:ffff::9"); !limited {
		t.Error("addresses of one IPv6 /64 are counted apart")
	}
	if limited, _ := l.fail("2001:db8:1:3::1"); limited {
		t.Error("another /64 shares the limit")
	}

	// Bounded: 3 clients at most, the least recently seen forgotten.
	for i := range 100 {
		l.fail(fmt.Sprintf("198.51.100.%d", i))
	}
	if n := l.clients(); n != 3 {
		t.Errorf("%d clients remembered, want 3", n)
	}
}
