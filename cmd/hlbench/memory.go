package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
)

// runMemory measures the bridge's memory with queued webhooks: the
// intake-only bridge (the real server and queue, workers not started)
// before and after it accepted events webhooks, after a GC.
func runMemory(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hlbench memory", flag.ContinueOnError)
	events := fs.Int("events", 10000, "webhooks to queue")
	contacts := fs.Int("contacts", 1000, "contacts they are for (each contact has one queued job)")
	clients := fs.Int("clients", 16, "concurrent senders")
	store := fs.String("store", "sqlite", "sqlite or postgres")
	pgURL := fs.String("postgres", "", "PostgreSQL server URL on loopback, for --store postgres")
	payload := fs.Bool("payload", false, "payload mode (the contact is stored with each webhook)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	head := machine()
	type snap struct {
		heapInuse, heapAlloc, sys uint64
		goroutines                int
		rss, hwm                  int64
	}
	take := func() snap {
		runtime.GC()
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
		return snap{m.HeapInuse, m.HeapAlloc, m.Sys, runtime.NumGoroutine(), rss, hwm}
	}
	before := take()
	dsn, removeStore, err := storeDSN(ctx, *store, *pgURL)
	if err != nil {
		return err
	}
	defer removeStore()
	b, err := intakeOnlyBridge(ctx, dsn, *payload)
	if err != nil {
		return err
	}
	defer b.Store.Close()
	srv, err := serve(b.Server)
	if err != nil {
		return err
	}
	defer srv.Close()
	idle := take()
	g := newWebhooks(srv.URL, b.Key, *contacts)
	c := newClient(*clients)
	progress("queuing %d webhooks for %d contacts", *events, *contacts)
	start := time.Now()
	r := closedLoop(ctx, c, g, *clients, 0, *events)
	took := time.Since(start)
	c.CloseIdleConnections()
	if r.ok != *events {
		return fmt.Errorf("%d of %d webhooks accepted (%s)", r.ok, *events, notAccepted(r))
	}
	time.Sleep(time.Second) // let the server's connections close
	queued, err := b.Queue.Events(ctx, bridge.EventFilter{Status: bridge.StatusQueued, Limit: *events + 1})
	if err != nil {
		return err
	}
	after := take()
	onDisk := ""
	if *store == "sqlite" {
		var size int64
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(dsn + suffix); err == nil {
				size += fi.Size()
			}
		}
		onDisk = fmt.Sprintf(" The SQLite files (%s with -wal and -shm) then hold %.1f MiB.", filepath.Base(dsn), float64(size)/(1<<20))
	}

	w := os.Stdout
	fmt.Fprintf(w, "### Memory\n\nMachine: %s.\n\n", head)
	fmt.Fprintf(w, "hlbench's process holds the bridge: cmd/hlbridge's server and durable queue on %s, with the queue's workers not started. "+
		"Between the second and third rows, %d clients in the same process queued %d webhooks for %d contacts in %s (%d River jobs, one per contact); "+
		"they were closed before the third row. Each row is read after a GC and debug.FreeOSMemory; "+
		"RSS includes modernc SQLite's page cache, which is outside the Go heap; peak RSS includes the clients. %d events were queued at the end.%s\n\n",
		*store, *clients, *events, *contacts, took.Round(time.Millisecond), min(*contacts, *events), len(queued), onDisk)
	mib := func(v uint64) string { return fmt.Sprintf("%.1f", float64(v)/(1<<20)) }
	kib := func(v int64) string { return fmt.Sprintf("%.1f", float64(v)/1024) }
	row := func(name string, s snap) []string {
		return []string{name, mib(s.heapInuse), mib(s.heapAlloc), mib(s.sys), kib(s.rss), kib(s.hwm), strconv.Itoa(s.goroutines)}
	}
	table(w, []string{"when", "heap in use MiB", "heap live MiB", "Go runtime Sys MiB", "RSS MiB", "peak RSS MiB", "goroutines"}, [][]string{
		row("process start", before),
		row("bridge ready, nothing queued", idle),
		row(fmt.Sprintf("%d webhooks queued", *events), after),
	})
	fmt.Fprintf(w, "\nLoad average at the end: %s.\n", loadAverage())
	return nil
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
