package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runIntake measures the HTTP intake: for each target, the most webhooks
// per second N closed-loop clients get accepted, and the ack latency at a
// fixed offered rate (open loop). The bridge targets run the real server
// and the real queue on a fresh store per measurement, with the queue's
// workers not started: only the intake's work (parse, dedupe lookup, the
// commit of event, contact and River job) is measured. With --outside
// each target is a process of its own instead, and the bridge's workers
// run against a live WordPress (see outside.go).
func runIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hlbench intake", flag.ContinueOnError)
	clientsFlag := fs.String("clients", "16,64", "closed-loop client counts, comma-separated")
	duration := fs.Duration("duration", 10*time.Second, "length of each throughput run")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before each run")
	rate := fs.Int("rate", 1000, "offered webhooks per second of the latency run (0: skip)")
	rateDuration := fs.Duration("rate-duration", 10*time.Second, "length of the latency run")
	targetsFlag := fs.String("targets", "", "noop, sqlite, postgres, comma-separated (default: noop,sqlite and postgres with --postgres)")
	pgURL := fs.String("postgres", "", "PostgreSQL server URL on loopback; a throw-away database is made on it")
	payload := fs.Bool("payload", false, "payload mode (no HighLevel token: the contact is stored with each webhook)")
	contacts := fs.Int("contacts", 1000, "contacts the webhooks cycle over")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the bridge targets' runs to this file")
	outsideFlag := fs.Bool("outside", false, "run each target as a process of its own (the bridge: cmd/hlbridge serve in payload mode, "+
		"its workers syncing into a live test WordPress) and count only the server's CPU")
	binary := fs.String("hlbridge", "", "with --outside: the hlbridge binary to run (say, another version's, to compare); default: build ./cmd/hlbridge")
	siteDir := fs.String("site", "", "with --outside: directory of a running test WordPress (start.sh's DIR); default: start one and stop it after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var clients []int
	for _, f := range splitList(*clientsFlag) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("--clients: %q is not a positive number", f)
		}
		clients = append(clients, n)
	}
	targets := splitList(*targetsFlag)
	if len(targets) == 0 {
		targets = []string{"noop", "sqlite"}
		if *pgURL != "" {
			targets = append(targets, "postgres")
		}
	}
	for _, t := range targets {
		if t != "noop" && t != "sqlite" && t != "postgres" {
			return fmt.Errorf("--targets: unknown target %q", t)
		}
		if t == "postgres" && *pgURL == "" {
			return fmt.Errorf("--targets postgres needs --postgres URL")
		}
	}
	if *outsideFlag && *cpuprofile != "" {
		return errors.New("--cpuprofile profiles this process: it does not go with --outside")
	}
	head := machine()

	var out *outside
	if *outsideFlag {
		*payload = true
		s, stopSite, err := openSite(ctx, *siteDir)
		if err != nil {
			return err
		}
		defer stopSite()
		if out, err = newOutside(ctx, s, *binary); err != nil {
			return err
		}
		defer out.close()
	}

	var profiling bool
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		startProfile := func() {
			if !profiling {
				pprof.StartCPUProfile(f)
				profiling = true
			}
		}
		stopProfile := func() {
			if profiling {
				pprof.StopCPUProfile()
				profiling = false
			}
		}
		defer stopProfile()
		profileHooks = [2]func(){startProfile, stopProfile}
	}

	type row struct {
		target, load string
		r            *result
		cpu          time.Duration
		idle         float64 // the machine's idle share during the row
		conns        string  // database connections opened
	}
	var rows []row
	run := func(name, load string, measure func(g *webhooks, c *http.Client, w *window) *result) error {
		var tg *target
		var err error
		if out != nil {
			tg, err = out.start(ctx, name, *pgURL)
		} else {
			tg, err = startTarget(ctx, name, *pgURL, *payload)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer tg.stop()
		c := newClient(1024)
		defer c.CloseIdleConnections()
		g := newWebhooks(tg.base, tg.key, *contacts)
		if name != "noop" && out == nil {
			profileHooks[0]()
			defer profileHooks[1]()
		}
		progress("%s, %s ...", targetName(name), load)
		w := &window{processCPU: tg.cpu}
		r := measure(g, c, w)
		progress("%s, %s: %.0f accepted/s, p50 %s ms, p99 %s ms, %d not accepted %v, CPU %.0f µs/webhook, machine idle %s",
			targetName(name), load, r.rate(), ms(r.pct(.5)), ms(r.pct(.99)), r.errs, r.statuses, perWebhook(w.cpu, r), percent(w.idle))
		conns := "–"
		switch name {
		case "sqlite":
			conns = "1"
		case "postgres":
			conns = postgresSessions(ctx, *pgURL, tg.dsn)
		}
		rows = append(rows, row{name, load, r, w.cpu, w.idle, conns})
		return ctx.Err()
	}
	for _, t := range targets {
		for _, n := range clients {
			err := run(t, fmt.Sprintf("%d clients, closed loop, %s", n, *duration), func(g *webhooks, c *http.Client, w *window) *result {
				closedLoop(ctx, c, g, n, *warmup, 0)
				w.start()
				defer w.stop()
				return closedLoop(ctx, c, g, n, *duration, 0)
			})
			if err != nil {
				return err
			}
		}
		if *rate > 0 {
			err := run(t, fmt.Sprintf("%d/s offered, open loop, %s", *rate, *rateDuration), func(g *webhooks, c *http.Client, w *window) *result {
				closedLoop(ctx, c, g, 4, *warmup, 0)
				w.start()
				defer w.stop()
				return openLoop(ctx, c, g, *rate, *rateDuration)
			})
			if err != nil {
				return err
			}
		}
	}

	w := os.Stdout
	mode := "HighLevel-token mode (the webhook's contact id is queued)"
	if *payload {
		mode = "payload mode (the contact in the webhook body is stored with it)"
	}
	fmt.Fprintf(w, "### Intake\n\nMachine: %s.\n\n", head)
	if out != nil {
		fmt.Fprintf(w, "Each webhook is WP Fusion's URL (`POST /?wpf_action=…&access_key=…&contact_id=…`) with a %d-byte HighLevel workflow body, "+
			"all distinct, over %d contacts. Measured from outside: each row's server is a fresh process of its own, the bridge `cmd/hlbridge serve` "+
			"configured by its environment (payload mode, defaults otherwise: request log at info, BRIDGE_WORDPRESS_CONCURRENCY workers) with its workers syncing the "+
			"accepted contacts into a live test WordPress (%s) during the run; the no-op gin handler is `hlbench noop-server`. "+
			"The load generator is hlbench, on the same cores, over loopback HTTP with keep-alive. "+
			"Latency is from send (for the open-loop rows, from the scheduled send) to the end of the answer. "+
			"CPU is the server process's alone (utime+stime from /proc/PID/stat, workers included) per accepted webhook, and the cores it kept busy on average. "+
			"Machine idle is the share of all cores' time that no process used during the row (from /proc/stat): "+
			"near 0%%, the server waits for a core, and its latency tail with it.\n\n",
			sampleBodySize(), *contacts, out.site.url)
	} else {
		fmt.Fprintf(w, "Each webhook is WP Fusion's URL (`POST /?wpf_action=…&access_key=…&contact_id=…`) with a %d-byte HighLevel workflow body, "+
			"all distinct, over %d contacts; %s. The bridge rows are cmd/hlbridge's server and durable queue on a fresh store per row, "+
			"with the queue's workers not started (only the intake is measured). The load generator runs in the same process on the same cores, over loopback HTTP with keep-alive. "+
			"Latency is from send (for the open-loop rows, from the scheduled send) to the end of the answer. "+
			"CPU is hlbench's process (server and load generator; PostgreSQL's own processes not included) per accepted webhook, and the cores it kept busy on average; machine idle, the share of all cores' time that no process used during the row.\n\n",
			sampleBodySize(), *contacts, mode)
	}
	if has(targets, "sqlite") {
		fmt.Fprintf(w, "SQLite: a file in %s (WAL, synchronous=NORMAL, one connection), modernc.org/sqlite.\n", os.TempDir())
	}
	if has(targets, "postgres") {
		fmt.Fprintf(w, "%s, database/sql with pgx, at most 16 connections.\n", postgresSettings(ctx, *pgURL))
	}
	fmt.Fprintln(w)
	var tr [][]string
	for _, r := range rows {
		tr = append(tr, []string{targetName(r.target), r.load, fmt.Sprintf("%.0f", r.r.rate()), ms(r.r.pct(.5)),
			ms(r.r.pct(.9)), ms(r.r.pct(.99)), ms(r.r.pct(1)), notAccepted(r.r),
			fmt.Sprintf("%.0f", perWebhook(r.cpu, r.r)), fmt.Sprintf("%.2f", r.cpu.Seconds()/r.r.elapsed.Seconds()), percent(r.idle), r.conns})
	}
	table(w, []string{"handler", "load", "accepted/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "not 202", "CPU µs/webhook", "cores used", "machine idle", "DB connections opened"}, tr)
	fmt.Fprintf(w, "\nLoad average at the end: %s.\n", loadAverage())
	return nil
}

// profileHooks start and stop the CPU profile around the bridge targets.
var profileHooks = [2]func(){func() {}, func() {}}

// target is a server under measurement.
type target struct {
	base, key, dsn string
	// cpu is the CPU time (user and system) used so far by the process
	// that serves the target.
	cpu  func() time.Duration
	stop func()
}

// startTarget serves a target on loopback in this process: the no-op gin
// handler, or the intake-only bridge on a fresh SQLite or PostgreSQL store.
func startTarget(ctx context.Context, name, pgURL string, payload bool) (*target, error) {
	if name == "noop" {
		s, err := serve(noopHandler())
		if err != nil {
			return nil, err
		}
		return &target{base: s.URL, key: "unused", cpu: cpuTime, stop: s.Close}, nil
	}
	dsn, removeStore, err := storeDSN(ctx, name, pgURL)
	if err != nil {
		return nil, err
	}
	b, err := intakeOnlyBridge(ctx, dsn, payload)
	if err != nil {
		removeStore()
		return nil, err
	}
	s, err := serve(b.Server)
	if err != nil {
		b.Store.Close()
		removeStore()
		return nil, err
	}
	return &target{base: s.URL, key: b.Key, dsn: dsn, cpu: cpuTime,
		stop: func() { s.Close(); b.Store.Close(); removeStore() }}, nil
}

func targetName(t string) string {
	switch t {
	case "noop":
		return "no-op gin handler"
	case "sqlite":
		return "hlbridge, SQLite"
	case "postgres":
		return "hlbridge, PostgreSQL"
	}
	return t
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sampleBodySize() int {
	_, body := newWebhooks("", "", 1000).webhook(123, 4, "update")
	return len(body)
}

// notAccepted summarises the answers other than 202.
func notAccepted(r *result) string {
	if r.errs == 0 {
		return "0"
	}
	var parts []string
	var codes []int
	for code := range r.statuses {
		if code != http.StatusAccepted {
			codes = append(codes, code)
		}
	}
	sort.Ints(codes)
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", r.statuses[code], code))
	}
	if f := r.sent - len(r.lat); f > 0 {
		parts = append(parts, fmt.Sprintf("%d transport errors", f))
	}
	return strings.Join(parts, ", ")
}

// perWebhook is CPU microseconds per accepted webhook.
func perWebhook(cpu time.Duration, r *result) float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(r.ok)
}
