package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// doors are the clients of the two outside systems, built from the
// configuration the server uses. hl is nil in payload mode.
type doors struct {
	wp *wordpress.Client
	hl *highlevel.Client
	// wpReady knows when WordPress last answered wp, for /readyz.
	wpReady *wordpressTracker
}

// newDoors builds the WordPress client and, in token mode, the HighLevel
// client (with its request budget, HIGHLEVEL_REQUESTS_PER_10S).
func newDoors(cfg *config, logger *slog.Logger) (doors, error) {
	tracker := newWordpressTracker(nil)
	wp, err := wordpress.New(wordpress.Config{URL: cfg.WordPressURL, Username: cfg.WordPressUsername,
		AppPassword: cfg.WordPressAppPassword, MaxConcurrent: cfg.WordPressConcurrency,
		Logger: logger.With(slog.String("component", "wordpress")), Transport: tracker})
	if err != nil {
		return doors{}, err
	}
	tracker.probe = func(ctx context.Context) error { _, err := wp.Me(ctx); return err }
	d := doors{wp: wp, wpReady: tracker}
	if cfg.HighLevelToken != "" {
		hc := cfg.highLevelConfig()
		hc.Logger = logger
		if d.hl, err = highlevel.New(hc); err != nil {
			return doors{}, err
		}
	}
	return d, nil
}

// newSyncer returns the product's rules on users; contacts come from
// HighLevel's API when d.hl is set, else from webhook bodies.
func newSyncer(ctx context.Context, cfg *config, users bridge.Users, d doors, logger *slog.Logger) (*bridge.Syncer, error) {
	if err := cfg.resolveReassign(ctx, d.wp); err != nil {
		return nil, err
	}
	var contacts bridge.Contacts // nil: payload mode (a nil *highlevel.Client would not be)
	if d.hl != nil {
		contacts = d.hl
	}
	return bridge.NewSyncer(bridge.Config{
		DefaultRole: cfg.DefaultRole, AllowedRoles: cfg.AllowedRoles,
		UsernameField: cfg.UsernameField, PasswordField: cfg.PasswordField,
		ReturnPasswordField: cfg.ReturnPasswordField, ReturnLoginLinkField: cfg.ReturnLinkField, FieldMap: cfg.fieldMap,
		RoleRules: cfg.roleRules, OnContactDelete: cfg.onDelete, ReassignUser: cfg.reassignID,
		DeactivateTag: cfg.DeactivateTag, TagsMetaKey: cfg.TagsMetaKey, ContactIDMetaKey: cfg.ContactIDMetaKey,
	}, users, contacts, logger)
}

// checkedSyncer checks WordPress as the server does at start-up (the
// credentials, capabilities and companion, and the roles the bridge may
// give) and returns the rules on it, for the commands that apply or plan
// syncs outside the server.
func checkedSyncer(ctx context.Context, cfg *config, d doors, logger *slog.Logger) (*bridge.Syncer, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := d.wp.Verify(ctx); err != nil {
		return nil, fmt.Errorf("check WordPress at %s: %w (run hlbridge check)", cfg.WordPressURL, err)
	}
	syncer, err := newSyncer(ctx, cfg, d.wp, d, logger)
	if err != nil {
		return nil, err
	}
	roles, err := d.wp.Roles(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the roles of WordPress at %s: %w (run hlbridge check)", cfg.WordPressURL, err)
	}
	if err := syncer.CheckRoles(roles); err != nil {
		return nil, fmt.Errorf("BRIDGE_DEFAULT_ROLE / BRIDGE_ALLOWED_ROLES: %w (run hlbridge check)", err)
	}
	return syncer, nil
}

// commandLogger is the log of an operator command: JSON on stderr, warnings
// and errors only unless BRIDGE_LOG_LEVEL is debug, so that the command's
// own lines on stdout stay readable.
func commandLogger(cfg *config, stderr io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	if level > slog.LevelDebug {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// parseInterleaved parses fs's flags wherever they stand among the
// positional arguments ("sync ID --dry-run" as well as "sync --dry-run ID")
// and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runSync is "hlbridge sync CONTACT_ID [--action A] [--dry-run]": one
// contact, now, through the rules the queue's workers apply.
func runSync(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	actionName := fs.String("action", string(bridge.ActionUpdate), "add, update or update_tags")
	dryRun := fs.Bool("dry-run", false, "print what would change; write nothing")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return fmt.Errorf("sync: %w\n%s", err, usage)
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return errors.New("sync: give one contact id\n" + usage)
	}
	action, ok := bridge.ParseAction(*actionName)
	if !ok || action == bridge.ActionTest {
		return fmt.Errorf("sync: --action %q: want add, update or update_tags", *actionName)
	}
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		return err
	}
	if cfg.HighLevelToken == "" {
		return errors.New("sync: needs HIGHLEVEL_TOKEN: in payload mode a contact is known only from its webhooks, so there is nothing to load it from")
	}
	logger := commandLogger(cfg, stderr)
	d, err := newDoors(cfg, logger)
	if err != nil {
		return err
	}
	syncer, err := checkedSyncer(ctx, cfg, d, logger)
	if err != nil {
		return err
	}
	req := bridge.Request{Action: action, ContactID: strings.TrimSpace(pos[0])}
	ctx, cancel := context.WithTimeout(ctx, cfg.JobTimeout)
	defer cancel()
	if *dryRun {
		res, err := syncer.Plan(ctx, req)
		if err != nil {
			return fmt.Errorf("dry run: contact %s: %w", req.ContactID, err)
		}
		fmt.Fprintln(stdout, describe(req.ContactID, res, true))
		return nil
	}
	res, err := syncer.Apply(ctx, req)
	if err != nil {
		return fmt.Errorf("contact %s: %w", req.ContactID, err)
	}
	fmt.Fprintln(stdout, describe(req.ContactID, res, false))
	return nil
}

// describe says in one line what a sync did, or would do.
func describe(contactID string, res bridge.Result, dry bool) string {
	var b strings.Builder
	switch {
	case dry && res.Created:
		fmt.Fprintf(&b, "dry run: would create a user for contact %s", contactID)
	case dry && len(res.Changed) == 0:
		fmt.Fprintf(&b, "dry run: user %d of contact %s would not change", res.UserID, contactID)
	case dry:
		fmt.Fprintf(&b, "dry run: would update user %d of contact %s", res.UserID, contactID)
	case res.Created:
		fmt.Fprintf(&b, "user %d created for contact %s", res.UserID, contactID)
	case len(res.Changed) == 0:
		fmt.Fprintf(&b, "user %d of contact %s unchanged", res.UserID, contactID)
	default:
		fmt.Fprintf(&b, "user %d of contact %s updated", res.UserID, contactID)
	}
	if len(res.Changed) > 0 {
		fmt.Fprintf(&b, "; changed: %s", strings.Join(res.Changed, ", "))
	}
	would := map[bool]string{true: " would be", false: ""}[dry]
	if res.Notified {
		fmt.Fprintf(&b, "; welcome email%s sent", would)
	}
	if res.PasswordReturned {
		fmt.Fprintf(&b, "; generated password%s written to HighLevel", would)
	}
	return b.String()
}
