// Command hlbridge keeps a WordPress site's users in step with HighLevel:
// it takes HighLevel's webhooks (WP Fusion's URLs included), keeps each one
// in a durable queue, and creates and updates WordPress users through the
// REST API. It is configured only by environment variables; see the README.
//
//	hlbridge                                   serve (the default)
//	hlbridge check
//	hlbridge health
//	hlbridge sync CONTACT_ID [--action add|update|update_tags] [--dry-run]
//	hlbridge import [--tag T] [--since YYYY-MM-DD] [--action A] [--dry-run]
//	hlbridge events list [--failed] [--limit N] [--json]
//	hlbridge events retry ID... | --failed
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hlbridge/hlbridge/bridge/httpapi"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/bridge/queue"
)

func main() {
	// The server's live heap is a few MiB (queued webhooks live in the
	// store, not in memory), so at Go's default GOGC=100 a storm of
	// webhooks makes it collect dozens of times a second. 400 spends about
	// 13 MiB more memory at its peak for some 15% less CPU per webhook (README,
	// Benchmarks). GOGC in the environment still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hlbridge:", err)
		os.Exit(1)
	}
}

// run is hlbridge with its surroundings passed in: it serves until ctx is
// cancelled, or runs the operator command that args name.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "events":
			return runEvents(ctx, args[2:], getenv, stdout)
		case "check":
			return runCheck(ctx, args[2:], getenv, stdout)
		case "health":
			return runHealth(ctx, args[2:], getenv, stdout)
		case "sync":
			return runSync(ctx, args[2:], getenv, stdout, stderr)
		case "import":
			return runImport(ctx, args[2:], getenv, stdout, stderr)
		case "serve":
		case "-h", "--help", "help":
			fmt.Fprint(stdout, usage)
			return nil
		default:
			return fmt.Errorf("unknown command %q\n%s", args[1], usage)
		}
	}
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	return serve(ctx, cfg, logger)
}

const usage = `usage:
  hlbridge [serve]                                     run the bridge
  hlbridge check                                       check the configuration: WordPress, HighLevel, the store
  hlbridge health                                      ask the running bridge's /readyz (BRIDGE_ADDR); exit 0 when ready
  hlbridge sync CONTACT_ID [--action A] [--dry-run]    apply one contact now (A: update (default), add, update_tags)
  hlbridge import [--tag T] [--since DATE] [--action A] [--dry-run]
                                                       queue existing HighLevel contacts once (hlbridge import -h)
  hlbridge events list [--failed] [--limit N] [--json] list stored webhooks, newest first
  hlbridge events retry ID... | --failed               queue failed webhooks again
Configuration is read from the environment; see the README.
`

// serve wires the bridge together and runs it until ctx ends, then shuts
// down in order: intake first, then the workers (bounded), then the store.
func serve(ctx context.Context, cfg *config, logger *slog.Logger) error {
	d, err := newDoors(cfg, logger)
	if err != nil {
		return err
	}
	wp := d.wp
	// The store first: a second server on the same SQLite file stops here,
	// naming the process that holds it, before it has done anything.
	store, err := queue.OpenStore(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.LockServer(); err != nil {
		return err
	}
	verifyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	companion, err := wp.Verify(verifyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("check WordPress at %s: %w", cfg.WordPressURL, err)
	}
	logger.Info("WordPress ready", slog.String("url", cfg.WordPressURL),
		slog.String("wordpress", companion.WordPress), slog.String("companion", companion.Version))

	if d.hl == nil {
		logger.Info("no HIGHLEVEL_TOKEN: payload mode, contacts come from webhook bodies")
	}
	counters := metrics.New()
	counters.WordPressLimit(wp.ConcurrencyLimit)
	syncer, err := newSyncer(ctx, cfg, counters.Users(wp), d, logger)
	if err != nil {
		return err
	}
	rolesCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	roles, err := wp.Roles(rolesCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("read the roles of WordPress at %s: %w", cfg.WordPressURL, err)
	}
	if err := syncer.CheckRoles(roles); err != nil {
		return fmt.Errorf("BRIDGE_DEFAULT_ROLE / BRIDGE_ALLOWED_ROLES / BRIDGE_ROLE_RULES: %w", err)
	}

	q, err := queue.New(store, syncer, queue.Config{
		Workers: cfg.WordPressConcurrency, JobTimeout: cfg.JobTimeout, RescueAfter: cfg.RescueAfter, MaxAttempts: cfg.MaxAttempts,
		RetryBase: cfg.RetryBase, DedupeWindow: cfg.DedupeWindow, SettleWindow: cfg.SettleWindow, EventRetention: cfg.EventRetention, SyncWait: cfg.SyncWait, Logger: logger, Metrics: counters,
	})
	if err != nil {
		return err
	}
	// Not ctx: cancelling River's start context stops it abruptly, cutting
	// running syncs off. Shutdown goes through q.Stop below instead.
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start queue: %w", err)
	}
	// WordPress has just answered: the syncs waiting out its outage's
	// backoff need not wait any longer.
	if _, err := q.BringForward(ctx); err != nil {
		logger.Warn("bring retries forward", slog.String("error", err.Error()))
	}
	srv, err := httpapi.NewServer(
		httpapi.Config{AccessKey: cfg.AccessKey, SyncByDefault: cfg.SyncByDefault, AdminToken: cfg.AdminToken,
			LocationID: cfg.HighLevelLocationID, TrustedProxies: cfg.TrustedProxies, WordPressURL: cfg.WordPressURL},
		httpapi.Deps{Syncer: syncer, Dispatcher: q, Events: q, Metrics: counters, AppVerifier: cfg.appVerifier, Logger: logger,
			Ready: []httpapi.ReadyCheck{{Name: "store", Check: store.Ping}, {Name: "wordpress", Check: d.wpReady.Ready}}})
	if err != nil {
		return err
	}

	hs := &http.Server{Addr: cfg.Addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: cfg.SyncWait + 30*time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	logger.Info("listening", slog.String("addr", cfg.Addr), slog.Bool("payload_mode", syncer.PayloadMode()))
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	case <-ctx.Done():
		logger.Info("shutting down")
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("HTTP shutdown", slog.String("error", err.Error()))
	}
	if err := q.Stop(shutCtx); err != nil {
		logger.Warn("queue shutdown", slog.String("error", err.Error()))
	}
	logger.Info("stopped")
	return serveErr
}

// parseLevel reads BRIDGE_LOG_LEVEL.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}
