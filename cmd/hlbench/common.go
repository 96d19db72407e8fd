package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/httpapi"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// progress prints what hlbench is doing on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hlbench: "+format+"\n", args...)
}

// machine describes this machine for the README, one line.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d × %s (nproc %d, GOMAXPROCS %d)%s, Linux %s, %s %s/%s; load average at start %s",
		runtime.NumCPU(), model, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem, strings.TrimSpace(string(kernel)),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, loadAverage())
}

// loadAverage is the 1, 5 and 15 minute load average.
func loadAverage() string {
	load, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(load))
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

// window measures a row's timed part: the CPU time of the process
// serving the target, and how idle the whole machine was meanwhile.
type window struct {
	processCPU func() time.Duration
	cpu        time.Duration // the server's, between start and stop
	idle       float64       // all cores' idle share, between start and stop; NaN if unknown

	cpu0  time.Duration
	stat0 machineTimes
}

func (w *window) start() {
	w.cpu0 = w.processCPU()
	w.stat0 = readMachineTimes()
}

func (w *window) stop() {
	w.cpu = w.processCPU() - w.cpu0
	w.idle = readMachineTimes().idleSince(w.stat0)
}

// machineTimes are all cores' times since boot, in clock ticks.
type machineTimes struct{ idle, total int64 }

// readMachineTimes reads /proc/stat; zero when it cannot (not Linux).
func readMachineTimes() machineTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}
	}
	return parseMachineTimes(string(b))
}

// parseMachineTimes reads the "cpu" line of /proc/stat: user, nice,
// system, idle, iowait, irq, softirq and steal (guest time is counted in
// user already). Idle is idle and iowait: a core waiting for the disk
// runs nothing.
func parseMachineTimes(stat string) machineTimes {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}
	}
	var t machineTimes
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return machineTimes{}
		}
		t.total += n
		if i == 3 || i == 4 {
			t.idle += n
		}
	}
	return t
}

// idleSince is the idle share of the cores' time between then and t;
// NaN when nothing was counted, so that an unreadable /proc/stat never
// passes for a busy machine.
func (t machineTimes) idleSince(then machineTimes) float64 {
	total := t.total - then.total
	if total <= 0 || then.total == 0 {
		return math.NaN()
	}
	return float64(t.idle-then.idle) / float64(total)
}

// percent formats a share as a whole percentage, "–" when it is unknown.
func percent(share float64) string {
	if math.IsNaN(share) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*share)
}

// table prints a Markdown table.
func table(w io.Writer, header []string, rows [][]string) {
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintln(w, "| "+strings.Join(seps, " | ")+" |")
	for _, r := range rows {
		fmt.Fprintln(w, "| "+strings.Join(r, " | ")+" |")
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// splitList splits a comma-separated flag.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// --- the bridge under test -------------------------------------------------

// served is an HTTP handler listening on a loopback port.
type served struct {
	URL string
	hs  *http.Server
}

// serve serves h on 127.0.0.1 with hlbridge's server timeouts.
func serve(h http.Handler) (*served, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 40 * time.Second, IdleTimeout: 120 * time.Second}
	go hs.Serve(ln)
	return &served{URL: "http://" + ln.Addr().String(), hs: hs}, nil
}

func (s *served) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.hs.Shutdown(ctx)
}

// noopHandler is a gin engine that reads the body and answers 202 like the
// intake, doing nothing else: what HTTP and gin alone cost.
func noopHandler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/", func(c *gin.Context) {
		io.Copy(io.Discard, c.Request.Body)
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted", "event_id": 0})
	})
	return e
}

// bridgeParts are what newBridge wires together, as cmd/hlbridge does.
type bridgeParts struct {
	Key    string
	Store  *queue.Store
	Queue  *queue.Queue
	Server *httpapi.Server
	Syncer *bridge.Syncer
}

// newBridge wires the bridge as cmd/hlbridge's serve does, on the store
// dsn, with users and contacts (nil contacts: payload mode). The queue is
// not started.
func newBridge(ctx context.Context, dsn string, users bridge.Users, contacts bridge.Contacts, qc queue.Config) (*bridgeParts, error) {
	fieldMap, err := bridge.ParseFieldMap("first_name=firstName,last_name=lastName") // BRIDGE_FIELD_MAP's default
	if err != nil {
		return nil, err
	}
	syncer, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber", FieldMap: fieldMap,
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id"}, users, contacts, nil)
	if err != nil {
		return nil, err
	}
	store, err := queue.OpenStore(ctx, dsn)
	if err != nil {
		return nil, err
	}
	q, err := queue.New(store, syncer, qc)
	if err != nil {
		store.Close()
		return nil, err
	}
	p := &bridgeParts{Key: "key-" + randomHex(12), Store: store, Queue: q, Syncer: syncer}
	if p.Server, err = httpapi.NewServer(httpapi.Config{AccessKey: p.Key},
		httpapi.Deps{Syncer: syncer, Dispatcher: q, Events: q}); err != nil {
		store.Close()
		return nil, err
	}
	return p, nil
}

// intakeOnlyBridge is the bridge with its real queue whose workers are
// never started: WordPress and HighLevel point at a closed port, and
// nothing calls them, so only the intake is measured.
func intakeOnlyBridge(ctx context.Context, dsn string, payload bool) (*bridgeParts, error) {
	wp, err := wordpress.New(wordpress.Config{URL: "http://127.0.0.1:9", Username: "bench", AppPassword: "unused"})
	if err != nil {
		return nil, err
	}
	var contacts bridge.Contacts
	if !payload {
		hl, err := highlevel.New(highlevel.Config{BaseURL: "http://127.0.0.1:9", Token: "pit-bench", LocationID: "bench"})
		if err != nil {
			return nil, err
		}
		contacts = hl
	}
	return newBridge(ctx, dsn, wp, contacts, queue.Config{Logger: slog.New(slog.DiscardHandler)})
}

// --- stores --------------------------------------------------------------

// storeDSN returns a fresh store of kind "sqlite" (a file in a new temp
// dir) or "postgres" (a throw-away database on the server pgURL), and a
// func that removes it.
func storeDSN(ctx context.Context, kind, pgURL string) (string, func(), error) {
	switch kind {
	case "sqlite":
		dir, err := os.MkdirTemp("", "hlbench-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "hlbridge.db"), func() { os.RemoveAll(dir) }, nil
	case "postgres":
		if pgURL == "" {
			return "", nil, errors.New("postgres needs --postgres URL")
		}
		return tempPostgres(ctx, pgURL)
	}
	return "", nil, fmt.Errorf("unknown store %q", kind)
}

// tempPostgres creates a throw-away database on the server serverURL
// names and returns its URL and a func that drops it.
func tempPostgres(ctx context.Context, serverURL string) (string, func(), error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("--postgres must be a postgres:// URL")
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return "", nil, fmt.Errorf("--postgres must be on loopback, not %s", h)
	}
	admin, err := sql.Open("pgx", serverURL)
	if err != nil {
		return "", nil, err
	}
	name := "hlbench_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			progress("could not drop database %s: %v", name, err)
		}
		admin.Close()
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// postgresSessions is how many connections (sessions) were opened to the
// database of dsn so far, from pg_stat_database.
func postgresSessions(ctx context.Context, serverURL, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "?"
	}
	db, err := sql.Open("pgx", serverURL)
	if err != nil {
		return "?"
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = $1",
		strings.TrimPrefix(u.Path, "/")).Scan(&n); err != nil {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

// postgresSettings describes the server's durability settings.
func postgresSettings(ctx context.Context, serverURL string) string {
	db, err := sql.Open("pgx", serverURL)
	if err != nil {
		return ""
	}
	defer db.Close()
	var version, syncCommit, fsync string
	db.QueryRowContext(ctx, "SHOW server_version").Scan(&version)
	db.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&syncCommit)
	db.QueryRowContext(ctx, "SHOW fsync").Scan(&fsync)
	return fmt.Sprintf("PostgreSQL %s on loopback TCP (synchronous_commit=%s, fsync=%s)", version, syncCommit, fsync)
}

// --- webhooks ------------------------------------------------------------

// webhooks makes distinct webhooks: WP Fusion's URL with a HighLevel
// workflow "Webhook" body, cycling over contacts. A contact's first webhook
// is add, then update and update_tags alternate; every body differs (a bulk
// edit changes the contact), so none is taken for a retried delivery.
type webhooks struct {
	base, key, run string
	contacts       int
	seq            atomic.Int64
}

func newWebhooks(base, key string, contacts int) *webhooks {
	return &webhooks{base: base, key: key, run: randomHex(4), contacts: contacts}
}

// contactID is contact n's HighLevel id.
func (g *webhooks) contactID(n int) string { return fmt.Sprintf("hlb%s%09d", g.run, n) }

// email is contact n's email.
func (g *webhooks) email(n int) string { return fmt.Sprintf("hlbench-%s-%d@example.test", g.run, n) }

// next returns the next webhook.
func (g *webhooks) next() (string, []byte) {
	i := int(g.seq.Add(1) - 1)
	n, r := i%g.contacts, i/g.contacts
	return g.webhook(n, r, stormAction(r, r+1))
}

// stormAction is the action of round r of rounds: add first, then update
// and update_tags alternating so that the last round is update (which,
// unlike update_tags, writes the name: the final state is then known).
func stormAction(r, rounds int) string {
	switch {
	case r == 0:
		return "add"
	case (rounds-1-r)%2 == 0:
		return "update"
	}
	return "update_tags"
}

// webhook is contact n's webhook of round r.
func (g *webhooks) webhook(n, r int, action string) (string, []byte) {
	id := g.contactID(n)
	q := url.Values{"wpf_action": {action}, "access_key": {g.key}, "contact_id": {id}}
	body, _ := json.Marshal(map[string]any{
		"contact_id": id, "first_name": firstName(n, r), "last_name": "Lee",
		"full_name": firstName(n, r) + " Lee", "email": g.email(n), "phone": "+15555550100",
		"tags":     strings.Join(contactTags(n, r), ","),
		"address1": "1 Main St", "city": "Springfield", "state": "IL", "country": "US", "postal_code": "62701",
		"timezone": "America/Chicago", "date_created": "2026-08-04T14:53:09.703Z",
		"contact_source": "web form", "contact_type": "lead", "company_name": "Acme Learning",
		"location":    map[string]any{"name": "Acme Learning", "id": "ve9EPM428h8vShlRW1KT"},
		"workflow":    map[string]any{"id": "6a1f0d2c-8e37-4b5a-9d6e-2f4c1b7a9e30", "name": "Sync to WordPress"},
		"triggerData": map[string]any{}, "customData": map[string]any{"wp_role": "subscriber"},
	})
	return g.base + "/?" + q.Encode(), body
}

// firstName and contactTags are contact n's values in round r: each round
// of a storm is a bulk edit that changes them.
func firstName(n, r int) string { return fmt.Sprintf("Ann%dR%d", n, r) }

func contactTags(n, r int) []string {
	return []string{"bulk", "t" + strconv.Itoa(n%7), "round " + strconv.Itoa(r)}
}

// --- load ----------------------------------------------------------------

// newClient is an HTTP client keeping up to conns connections alive.
func newClient(conns int) *http.Client {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// result is what a load run saw.
type result struct {
	sent, ok int // requests completed, and those answered 202
	errs     int // transport errors and other statuses
	statuses map[int]int
	elapsed  time.Duration
	lat      []time.Duration // sorted
}

func (r *result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

// recorder collects outcomes from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	statuses map[int]int
	errs     int
	failed   int // transport errors
}

func (rc *recorder) add(lat time.Duration, status int, err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.statuses == nil {
		rc.statuses = map[int]int{}
	}
	if err != nil {
		rc.errs++
		rc.failed++
		return
	}
	rc.statuses[status]++
	rc.lat = append(rc.lat, lat)
	if status != http.StatusAccepted {
		rc.errs++
	}
}

func (rc *recorder) result(elapsed time.Duration) *result {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	slices.Sort(rc.lat)
	r := &result{sent: len(rc.lat) + rc.failed, statuses: rc.statuses, errs: rc.errs, elapsed: elapsed, lat: rc.lat}
	r.ok = rc.statuses[http.StatusAccepted]
	return r
}

// post sends one webhook and reads the answer.
func post(ctx context.Context, c *http.Client, u string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedLoop runs clients senders, each sending its next webhook as soon
// as the previous one is answered, for d (or until n webhooks when n > 0).
func closedLoop(ctx context.Context, c *http.Client, g *webhooks, clients int, d time.Duration, n int) *result {
	var rc recorder
	var left atomic.Int64
	left.Store(int64(n))
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				if n > 0 && left.Add(-1) < 0 {
					return
				}
				if n <= 0 && time.Now().After(deadline) {
					return
				}
				u, body := g.next()
				t0 := time.Now()
				status, err := post(ctx, c, u, body)
				rc.add(time.Since(t0), status, err)
			}
		})
	}
	wg.Wait()
	return rc.result(time.Since(start))
}

// openLoop sends rate webhooks per second for d on a fixed schedule,
// whatever the answers take (open loop); a latency counts from the
// scheduled send time, so a stall is not hidden by sending less.
func openLoop(ctx context.Context, c *http.Client, g *webhooks, rate int, d time.Duration) *result {
	var rc recorder
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		u, body := g.next()
		wg.Go(func() {
			status, err := post(ctx, c, u, body)
			rc.add(time.Since(at), status, err)
		})
	}
	wg.Wait()
	return rc.result(time.Since(start))
}

// --- the stand-in testing.TB -----------------------------------------------

// standInTB is the testing.TB highleveltest.New needs, outside a test:
// Helper, Cleanup, Fatal(f), Error(f) and Log(f) are implemented; any other
// method panics on the nil embedded interface.
type standInTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (t *standInTB) Helper()                 {}
func (t *standInTB) Name() string            { return "hlbench" }
func (t *standInTB) Logf(f string, a ...any) { progress(f, a...) }
func (t *standInTB) Log(a ...any)            { progress("%s", fmt.Sprint(a...)) }
func (t *standInTB) Errorf(f string, a ...any) {
	progress("error: "+f, a...)
}
func (t *standInTB) Error(a ...any)            { progress("error: %s", fmt.Sprint(a...)) }
func (t *standInTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *standInTB) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
func (t *standInTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// close runs the cleanups, last registered first.
func (t *standInTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
