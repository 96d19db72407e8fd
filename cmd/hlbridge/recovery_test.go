package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

// Recovery tests: a dead (or paused) process's jobs are taken over within
// seconds, without River's rescuer. BRIDGE_RESCUE_AFTER is set to 10 minutes
// in each, so that a pass cannot come from the rescuer.

// recoveryEnv is the environment of the recovery tests' processes.
var recoveryEnv = []string{"BRIDGE_JOB_TIMEOUT=60s", "BRIDGE_RESCUE_AFTER=10m", "BRIDGE_SHUTDOWN_TIMEOUT=2s"}

// kill -9 while WordPress is down and syncs are waiting out their backoff
// (10 minutes, so only bringing them forward ends it) or are mid-attempt
// against a slow WordPress; restart with WordPress back: the backlog resumes
// within seconds, every webhook is applied once, and the dead attempts cost
// no attempt.
func TestRestartResumesBacklogAtOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	cs := w.contacts(30)
	px := newSwitchProxy(t, strings.TrimPrefix(site.URL, "http://"))
	env := append([]string{"WORDPRESS_URL=http://" + px.addr, "BRIDGE_RETRY_BASE=10m"}, recoveryEnv...)
	first := w.start("first", env...)

	// The first half meets a WordPress that is down: retryable, 10 min away.
	px.setDown(true)
	client := &http.Client{Timeout: 10 * time.Second}
	var acked []int64
	send := func(p *proc, c highlevel.Contact) {
		status, r, err := w.webhook(client, p.url, "add", c.ID, 0)
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("add for %s: %d %+v %v", c.ID, status, r, err)
		}
		acked = append(acked, r.EventID)
	}
	for _, c := range cs[:15] {
		send(first, c)
	}
	waitFor(t, 30*time.Second, "syncs failing against a WordPress that is down", func() bool {
		return strings.Count(first.logs.String(), `"msg":"sync failed, will retry"`) >= 15
	})
	// The second half meets a slow one: mid-attempt at the kill.
	px.setDown(false)
	px.setDelay(3 * time.Second)
	for _, c := range cs[15:] {
		send(first, c)
	}
	waitFor(t, 30*time.Second, "syncs running", func() bool { return w.runningJobs() >= 2 })
	running := w.runningJobs()
	first.kill(t)
	t.Logf("killed with %d jobs running and 15 waiting out a 10 min backoff", running)

	restart := time.Now()
	second := w.start("second", append([]string{"BRIDGE_RETRY_BASE=10m"}, recoveryEnv...)...)
	up := time.Since(restart)
	resumed := waitFor(t, 30*time.Second, "the backlog to resume", func() bool {
		return strings.Contains(second.logs.String(), `"msg":"synced"`)
	})
	// Generous: draining depends on WordPress's speed, which other tests
	// share; the resumption above is what this test is about.
	w.waitDrained(2 * time.Minute)
	drained := time.Since(restart)
	t.Logf("restart: healthy after %s, first sync %s after the restart, %d webhooks drained %s after it",
		up.Round(time.Millisecond), resumed.Sub(restart).Round(time.Millisecond), len(cs), drained.Round(time.Millisecond))
	if !strings.Contains(second.logs.String(), `"msg":"took over the jobs of a dead process"`) {
		t.Errorf("the restarted process did not take over the dead one's running jobs")
	}
	w.checkEvents(acked, len(cs), 0)
	for _, e := range w.listEvents() {
		// Down: one failed attempt, then the one that worked. Slow: the dead
		// attempt is not spent, so one.
		if e.Attempts > 2 {
			t.Errorf("event %d (contact %s) took %d attempts: the dead attempt was counted", e.ID, e.ContactID, e.Attempts)
		}
	}
	w.checkUsers(cs)
}

// While WordPress is down the syncs back off (10 minutes here); as soon as
// one sync succeeds again, the others are brought forward.
func TestRetriesBroughtForwardWhenWordPressIsBack(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	cs := w.contacts(8)
	px := newSwitchProxy(t, strings.TrimPrefix(site.URL, "http://"))
	p := w.start("only", append([]string{"WORDPRESS_URL=http://" + px.addr, "BRIDGE_RETRY_BASE=10m"}, recoveryEnv...)...)
	client := &http.Client{Timeout: 10 * time.Second}
	px.setDown(true)
	var acked []int64
	for i, c := range cs {
		status, r, err := w.webhook(client, p.url, "add", c.ID, 0)
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("add %d: %d %v", i, status, err)
		}
		acked = append(acked, r.EventID)
		if i == len(cs)-2 {
			waitFor(t, 30*time.Second, "syncs failing", func() bool {
				return strings.Count(p.logs.String(), `"msg":"sync failed, will retry"`) >= len(cs)-1
			})
			px.setDown(false) // the last one finds the site back
		}
	}
	back := time.Now()
	w.waitDrained(30 * time.Second)
	t.Logf("the site came back; %d syncs that were backing off for 10 min drained %s later", len(cs)-1,
		time.Since(back).Round(time.Millisecond))
	w.checkEvents(acked, len(cs), 0)
}

// One server per SQLite file: a second one refuses to start and names the
// pid of the first; the events commands work beside it; the store and its
// lock file are private to their owner.
func TestSecondServerOnSameSQLiteFileRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	first := w.start("first")
	second := launch(t, "second", w.env(), w.track)
	select {
	case <-second.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("a second server on the same SQLite file is still running; log:\n%s", tail(second.logs.String(), 10))
	}
	msg := second.logs.String()
	t.Logf("second server: %v: %s", second.err, strings.TrimSpace(msg))
	if second.err == nil {
		t.Errorf("the second server exited 0")
	}
	if want := "pid " + strconv.Itoa(first.cmd.Process.Pid); !strings.Contains(msg, want) {
		t.Errorf("the refusal does not name the holder (%q): %s", want, msg)
	}
	if !first.running() {
		t.Fatalf("the first server died")
	}
	if evs := w.listEvents(); evs == nil {
		t.Logf("events list works beside the server (no events yet)")
	}
	for _, f := range []string{w.dsn, w.dsn + ".lock"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// Once the first is gone, a server starts on the file again.
	first.kill(t)
	w.start("third")
}

// Two processes on PostgreSQL; one is killed (kill -9) mid-storm, with
// syncs running against a slow WordPress: the other takes its jobs over and
// finishes everything within 30 s of the death.
func TestPostgresKilledProcessJobsTakenOver(t *testing.T) {
	t.Parallel()
	w := newWorld(t, postgresDB(t))
	cs := w.contacts(24)
	px := newSwitchProxy(t, strings.TrimPrefix(site.URL, "http://"))
	a := w.start("a", append([]string{"WORDPRESS_URL=http://" + px.addr}, recoveryEnv...)...)
	b := w.start("b", recoveryEnv...)
	px.setDelay(2 * time.Second)
	var mu sync.Mutex
	targets := []*proc{a, b}
	s := newStorm(w, cs, 3, -1, func(int) bool { return false })
	s.target = func(contact, n int) string { mu.Lock(); defer mu.Unlock(); return targets[contact%2].url }
	s.send(nil)
	// Only a's requests go through the proxy, each held there for 2 s: a
	// write seen in the last second is a sync of a's in flight. (Counting
	// running jobs alone could count b's, and kill an a with nothing
	// running, which leaves b nothing to take over.)
	waitFor(t, 30*time.Second, "a's syncs running", func() bool {
		return px.writesSince(time.Now().Add(-time.Second)) > 0 && w.runningJobs() >= 2
	})
	running := w.runningJobs()
	a.kill(t)
	died := time.Now()
	mu.Lock()
	targets = []*proc{b, b}
	mu.Unlock()
	s.send(nil)
	if s.rejected != nil || s.unsent() > 0 {
		t.Fatalf("%d unsent; refused: %v", s.unsent(), s.rejected)
	}
	took := waitFor(t, 30*time.Second, "b to take a's jobs over", func() bool {
		return strings.Contains(b.logs.String(), `"msg":"took over the jobs of a dead process"`)
	})
	w.waitDrained(30*time.Second - time.Since(died))
	t.Logf("a killed with %d jobs running: b took them over %s after the death, all drained %s after it",
		running, took.Sub(died).Round(time.Millisecond), time.Since(died).Round(time.Millisecond))
	w.checkEvents(s.acked, s.total(), s.resent())
	w.checkUsers(cs)
}

// A process paused (SIGSTOP) with syncs in flight loses its lease; another
// takes its jobs over and applies them. Resumed (SIGCONT), the paused one
// sends WordPress no write for them, and every event is recorded done once.
func TestPostgresPausedProcessWritesNothingAfterTakeover(t *testing.T) {
	t.Parallel()
	w := newWorld(t, postgresDB(t))
	cs := w.contacts(12)
	px := newSwitchProxy(t, strings.TrimPrefix(site.URL, "http://"))
	px.setDelay(1500 * time.Millisecond)
	a := w.start("a", append([]string{"WORDPRESS_URL=http://" + px.addr}, recoveryEnv...)...)
	b := w.start("b", recoveryEnv...)
	client := &http.Client{Timeout: 10 * time.Second}
	var acked []int64
	for _, c := range cs {
		status, r, err := w.webhook(client, a.url, "add", c.ID, 0)
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("add for %s: %d %v", c.ID, status, err)
		}
		acked = append(acked, r.EventID)
	}
	waitFor(t, 30*time.Second, "a's syncs inside WordPress", func() bool {
		return w.runningJobs() >= 2 && strings.Contains(a.logs.String(), `"route":"/hlbridge/v1/users"`)
	})
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })
	took := waitFor(t, 40*time.Second, "b to take the paused process's jobs over", func() bool {
		return strings.Contains(b.logs.String(), `"msg":"took over the jobs of a dead process"`)
	})
	w.waitDrained(40 * time.Second)
	t.Logf("a paused: b took its jobs over %s later and drained them %s later",
		took.Sub(paused).Round(time.Millisecond), time.Since(paused).Round(time.Millisecond))

	resumed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Let a's syncs reach their next WordPress request, and give up.
	time.Sleep(8 * time.Second)
	if !a.running() {
		t.Fatalf("a died after SIGCONT: %v\n%s", a.err, tail(a.logs.String(), 20))
	}
	writes := px.writesSince(resumed)
	t.Logf("after SIGCONT, a sent WordPress %d writes; %d syncs abandoned", writes,
		strings.Count(a.logs.String(), `"msg":"sync abandoned: another process has its job"`))
	if writes > 0 {
		t.Errorf("the resumed process sent WordPress %d writes for jobs another process had taken over", writes)
	}
	w.checkEvents(acked, len(cs), 0)
	w.checkUsers(cs)
}

// waitFor polls cond every 100 ms until it holds, failing the test after
// timeout, and returns when it held.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Now()
}

// switchProxy forwards TCP to WordPress, and can be slowed (each chunk the
// bridge sends is held for a delay) or made to look down (connections are
// closed). It records when each write request (POST, PUT, PATCH, DELETE)
// came through.
type switchProxy struct {
	addr   string
	down   atomic.Bool
	delay  atomic.Int64
	mu     sync.Mutex
	writes []time.Time
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &switchProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *switchProxy) setDown(down bool)        { p.down.Store(down) }
func (p *switchProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }
func (p *switchProxy) writesSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.writes {
		if at.After(t) {
			n++
		}
	}
	return n
}

func (p *switchProxy) serve(c net.Conn, target string) {
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
			for _, m := range []string{"POST ", "PUT ", "PATCH ", "DELETE "} {
				if bytes.HasPrefix(buf[:n], []byte(m)) {
					p.mu.Lock()
					p.writes = append(p.writes, time.Now())
					p.mu.Unlock()
				}
			}
			time.Sleep(time.Duration(p.delay.Load()))
			if p.down.Load() {
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
