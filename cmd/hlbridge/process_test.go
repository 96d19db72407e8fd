package main

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kill -9 in the middle of a storm of webhooks, then a restart on the same
// store: every webhook the bridge acknowledged is applied, once, and every
// contact ends with one user in its final state. The jobs the dead process
// was running are taken over by the restarted one as it starts, without
// waiting for River's rescuer (BRIDGE_RESCUE_AFTER).
func TestKillMidStormThenRestart(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	cs := w.contacts(60)
	first := w.start("first")
	s := newStorm(w, cs, 10, 5, func(i int) bool { return i%2 == 0 })
	var mu sync.Mutex
	p := first
	s.target = func(int, int) string { mu.Lock(); defer mu.Unlock(); return p.url }

	half := make(chan struct{})
	var once sync.Once
	sent := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(sent)
		s.send(func(acks int64) {
			if acks >= int64(s.total()/2) {
				once.Do(func() { close(half) })
			}
		})
	}()
	select {
	case <-half:
	case <-sent:
		t.Fatalf("the storm ended before half of it was acknowledged (%d of %d)", s.acks.Load(), s.total())
	}
	first.kill(t)
	killedAt := time.Now()
	<-sent
	ackedBeforeKill := s.acks.Load()
	running := w.runningJobs()
	t.Logf("killed after %s with %d of %d webhooks acknowledged; %d jobs were running",
		killedAt.Sub(start).Round(time.Millisecond), ackedBeforeKill, s.total(), running)

	second := w.start("second")
	mu.Lock()
	p = second
	mu.Unlock()
	s.send(nil)
	if s.rejected != nil {
		t.Fatalf("webhooks were refused: %v", s.rejected[:min(len(s.rejected), 5)])
	}
	if n := s.unsent(); n > 0 {
		t.Fatalf("%d webhooks were not acknowledged by the restarted bridge", n)
	}
	w.waitDrained(3 * time.Minute)
	drained := time.Since(killedAt)
	tookOver := strings.Contains(second.logs.String(), `"msg":"took over the jobs of a dead process"`)
	t.Logf("drained %s after the kill; the restarted process took the dead one's jobs over: %v; River's rescuer: %s",
		drained.Round(time.Second), tookOver, rescueTime(t, second.logs.String(), killedAt))
	if running > 0 && !tookOver {
		t.Errorf("%d jobs were running when the process died, yet the restarted process took none over", running)
	}

	w.checkEvents(s.acked, s.total(), s.resent())
	w.checkUsers(cs)
}

// rescueTime finds River's log line for rescued jobs and says how long
// after the kill it came.
func rescueTime(t *testing.T, logs string, killedAt time.Time) string {
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, "JobRescuer") || !strings.Contains(line, "num_jobs_retry_scheduled") {
			continue
		}
		var l struct {
			Time time.Time `json:"time"`
			N    int       `json:"num_jobs_retry_scheduled"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("River's log line is not JSON: %s", line)
			continue
		}
		return l.Time.Sub(killedAt).Round(time.Second).String() + " (" + strconv.Itoa(l.N) + " jobs)"
	}
	return "never"
}

// SIGTERM while syncs are running, against a WordPress slowed by a proxy:
// the process stops taking webhooks, lets the running syncs finish (when
// they can within BRIDGE_SHUTDOWN_TIMEOUT) or cancels them at the timeout,
// exits 0 having logged "stopped", and leaves no job running; after a
// restart everything acknowledged before the signal is applied, once.
func TestGracefulShutdownThenRestart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		delay           time.Duration // added to every request to WordPress
		shutdownTimeout time.Duration
		finish          bool // the syncs running at the signal can finish in time
	}{
		{"running syncs finish", 150 * time.Millisecond, 10 * time.Second, true},
		{"timeout cancels running syncs", time.Second, 2 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "")
			cs := w.contacts(20)
			slow := newSlowProxy(t, strings.TrimPrefix(site.URL, "http://"), tc.delay)
			first := w.start("first", "WORDPRESS_URL=http://"+slow,
				"BRIDGE_SHUTDOWN_TIMEOUT="+tc.shutdownTimeout.String(), "BRIDGE_JOB_TIMEOUT=60s", "BRIDGE_RESCUE_AFTER=90s")
			s := newStorm(w, cs, 3, -1, func(int) bool { return false })
			s.target = func(int, int) string { return first.url }
			s.send(nil)
			if s.rejected != nil || s.unsent() > 0 {
				t.Fatalf("before the signal: %d unsent, refused: %v", s.unsent(), s.rejected)
			}
			// Signal once a sync is inside WordPress: it has found no user and
			// is about to create one.
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(first.logs.String(), `"route":"/hlbridge/v1/users"`) {
				if time.Now().After(deadline) {
					t.Fatalf("no sync reached WordPress within 30 s; log:\n%s", tail(first.logs.String(), 20))
				}
				time.Sleep(20 * time.Millisecond)
			}
			took, err := first.terminate(t, tc.shutdownTimeout+20*time.Second)
			logs := first.logs.String()
			t.Logf("exited %s after SIGTERM (BRIDGE_SHUTDOWN_TIMEOUT=%s): %v", took.Round(time.Millisecond), tc.shutdownTimeout, err)
			if err != nil {
				t.Errorf("exit after SIGTERM: %v, want status 0; log:\n%s", err, tail(logs, 20))
			}
			if took > tc.shutdownTimeout+2*time.Second {
				t.Errorf("took %s to exit after SIGTERM, want at most about BRIDGE_SHUTDOWN_TIMEOUT (%s)", took, tc.shutdownTimeout)
			}
			if !tc.finish && took < tc.shutdownTimeout-200*time.Millisecond {
				t.Errorf("exited %s after SIGTERM, before BRIDGE_SHUTDOWN_TIMEOUT (%s), although the running syncs could not "+
					"have finished: they were cancelled at once instead of being given the timeout", took, tc.shutdownTimeout)
			}
			for _, msg := range []string{`"msg":"shutting down"`, `"msg":"stopped"`} {
				if !strings.Contains(logs, msg) {
					t.Errorf("the log lacks %s", msg)
				}
			}
			_, afterSignal, _ := strings.Cut(logs, `"msg":"shutting down"`)
			finished := strings.Count(afterSignal, `"msg":"synced"`)
			t.Logf("%d syncs finished after the signal", finished)
			if tc.finish && finished == 0 {
				t.Errorf("no sync finished after SIGTERM: the syncs running at the signal were cancelled "+
					"instead of being let finish within BRIDGE_SHUTDOWN_TIMEOUT (%s)", tc.shutdownTimeout)
			}
			if n := w.runningJobs(); n > 0 {
				t.Errorf("%d jobs are left running after a graceful shutdown: they would wait for River's rescue", n)
			}
			queued := 0
			for _, e := range w.listEvents() {
				if e.Status == "queued" {
					queued++
				}
			}
			t.Logf("%d of %d events were still queued at exit", queued, s.total())
			if queued == 0 {
				t.Errorf("every event was done before the exit: the restart proves nothing; slow WordPress down more")
			}

			w.start("second")
			w.waitDrained(90 * time.Second)
			w.checkEvents(s.acked, s.total(), s.resent())
			w.checkUsers(cs)
		})
	}
}

// newSlowProxy forwards TCP to target, holding each chunk the client sends
// for delay: every request to WordPress through it takes delay longer.
func newSlowProxy(t *testing.T, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					defer c.Close()
					buf := make([]byte, 32<<10)
					for {
						n, err := up.Read(buf)
						if n > 0 {
							if _, werr := c.Write(buf[:n]); werr != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				}()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						time.Sleep(delay)
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
