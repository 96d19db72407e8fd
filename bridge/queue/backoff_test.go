package queue

import (
	"testing"
	"time"
)

// The retry schedule keeps trying for at least a day, and not forever.
func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	b := backoff{base: 2 * time.Second}
	var total time.Duration
	for attempt := 1; attempt < 60; attempt++ {
		d := b.delay(attempt)
		if d > maxBackoff {
			t.Fatalf("attempt %d waits %s, over the cap", attempt, d)
		}
		total += d
	}
	if total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("60 attempts span %s, want a little over a day", total)
	}
	if b.delay(1) != 2*time.Second || b.delay(2) != 4*time.Second {
		t.Errorf("first delays %s, %s", b.delay(1), b.delay(2))
	}
}
