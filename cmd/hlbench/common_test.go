package main

import (
	"math"
	"testing"
)

func TestParseMachineTimes(t *testing.T) {
	// Two readings of /proc/stat's first lines, one second apart on 2 cores:
	// 200 ticks in all, of which idle 30 and iowait 10.
	before := "cpu  1000 10 500 8000 100 0 20 5 7 0\ncpu0 500 5 250 4000 50 0 10 2 3 0\n"
	after := "cpu  1110 10 550 8030 110 0 20 5 9 0\ncpu0 555 5 275 4015 55 0 12 2 4 0\n"
	b, a := parseMachineTimes(before), parseMachineTimes(after)
	if want := (machineTimes{idle: 8100, total: 9635}); b != want {
		t.Fatalf("parse %q = %+v, want %+v", before, b, want)
	}
	if got := a.idleSince(b); got != 40.0/200 {
		t.Errorf("idle share = %v, want 0.2", got)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 3\n", "cpu  1 2 3 x 5 6 7 8 9 10\n"} {
		if got := parseMachineTimes(bad); got != (machineTimes{}) {
			t.Errorf("parse %q = %+v, want zero", bad, got)
		}
	}
	// Unreadable at either end: unknown, shown as "–", never as 0% idle.
	for _, c := range [][2]machineTimes{{{}, {}}, {{}, a}, {b, {}}} {
		if got := c[1].idleSince(c[0]); !math.IsNaN(got) {
			t.Errorf("idle share from %+v to %+v = %v, want NaN", c[0], c[1], got)
		}
	}
	if got := percent(math.NaN()); got != "–" {
		t.Errorf("percent(NaN) = %q, want –", got)
	}
	if got := percent(0.204); got != "20%" {
		t.Errorf("percent(0.204) = %q, want 20%%", got)
	}
}
