// Command hlbridge keeps a WordPress site's users in step with HighLevel:
// it takes HighLevel's webhooks (WP Fusion's URLs included) and creates and
// updates WordPress users through the REST API. It is configured only by
// environment variables; see the README.
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
	"strings"
	"syscall"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hlbridge:", err)
		os.Exit(1)
	}
}

// run starts hlbridge and serves until ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	wp, err := wordpress.New(wordpress.Config{URL: cfg.WordPressURL, Username: cfg.WordPressUsername,
		AppPassword: cfg.WordPressAppPassword, Logger: logger.With(slog.String("component", "wordpress"))})
	if err != nil {
		return err
	}
	verifyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	companion, err := wp.Verify(verifyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("check WordPress at %s: %w", cfg.WordPressURL, err)
	}
	logger.Info("WordPress ready", slog.String("url", cfg.WordPressURL), slog.String("wordpress", companion.WordPress),
		slog.String("companion", companion.Version))

	var contacts bridge.Contacts // nil: payload mode
	if cfg.HighLevelToken != "" {
		hl, err := highlevel.New(cfg.highLevelConfig())
		if err != nil {
			return err
		}
		contacts = hl
	} else {
		logger.Info("no HIGHLEVEL_TOKEN: payload mode, contacts come from webhook bodies")
	}
	syncer, err := bridge.NewSyncer(bridge.Config{
		DefaultRole: cfg.DefaultRole, AllowedRoles: cfg.AllowedRoles,
		UsernameField: cfg.UsernameField, PasswordField: cfg.PasswordField,
		ReturnPasswordField: cfg.ReturnPasswordField, FieldMap: cfg.fieldMap,
		TagsMetaKey: cfg.TagsMetaKey, ContactIDMetaKey: cfg.ContactIDMetaKey,
	}, wp, contacts, logger)
	if err != nil {
		return err
	}
	srv, err := bridge.NewServer(bridge.ServerConfig{AccessKey: cfg.AccessKey}, syncer, bridge.Inline{Syncer: syncer}, logger)
	if err != nil {
		return err
	}
	return serve(ctx, cfg.Addr, srv, logger)
}

// serve runs the HTTP server until ctx ends, then drains it.
func serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	hs := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	logger.Info("listening", slog.String("addr", addr))
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", addr, err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// parseLevel reads BRIDGE_LOG_LEVEL.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l, err
}
