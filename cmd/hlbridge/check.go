package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the store's write probe
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", for the store's write probe

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// checkLine is the outcome of one check: ok, or what is wrong and what to
// do about it. skipped marks a check that does not apply (payload mode) or
// cannot run because an earlier one failed; it does not pass by itself.
// advice is a passing check with something worth doing (marked "!"):
// it does not fail the check.
type checkLine struct {
	ok      bool
	skipped bool
	advice  bool
	what    string
	fix     string
}

func (l checkLine) String() string {
	mark := "✗"
	switch {
	case l.advice:
		mark = "!"
	case l.ok:
		mark = "✓"
	case l.skipped:
		mark = "–"
	}
	s := mark + " " + l.what
	if (!l.ok || l.advice) && l.fix != "" {
		s += "\n    → " + l.fix
	}
	return s
}

// runCheck is "hlbridge check": it tries, with the server's configuration,
// everything the server needs, and prints one line per check. It fails when
// any check failed. It writes nothing anywhere (see checkStore) and never
// prints a secret.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return fmt.Errorf("check takes no arguments\n%s", usage)
	}
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		fmt.Fprintln(stdout, checkLine{what: "configuration", fix: strings.ReplaceAll(err.Error(), "\n", "; ")})
		return errors.New("check: the configuration is invalid")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	d, err := newDoors(cfg, logger)
	if err != nil {
		return err
	}
	failed := 0
	report := func(l checkLine) {
		if !l.ok && !l.skipped {
			failed++
		}
		fmt.Fprintln(stdout, l)
	}
	for _, l := range checkWordPress(ctx, cfg, d.wp) {
		report(l)
	}
	for _, l := range checkHighLevel(ctx, cfg, d.hl) {
		report(l)
	}
	report(checkStore(ctx, cfg.Database))
	if failed > 0 {
		return fmt.Errorf("check: %d failed", failed)
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}

// checkWordPress checks the site, the credentials, the capabilities, the
// companion plugin and the roles, in that order: each needs the ones before.
func checkWordPress(ctx context.Context, cfg *config, wp *wordpress.Client) []checkLine {
	var out []checkLine
	skipRest := func(why string, names ...string) []checkLine {
		for _, n := range names {
			out = append(out, checkLine{skipped: true, what: n + ": not checked, " + why})
		}
		return out
	}
	const (
		capsName  = "capabilities " + "list_users create_users edit_users promote_users"
		compName  = "companion plugin"
		rolesName = "roles"
	)
	user := cfg.WordPressUsername
	me, err := wp.Me(ctx)
	switch {
	case errors.Is(err, wordpress.ErrUnauthorized):
		out = append(out, checkLine{ok: true, what: "WordPress reachable at " + cfg.WordPressURL},
			checkLine{what: fmt.Sprintf("application password of %q: WordPress did not accept it and treats the bridge as an anonymous visitor", user),
				fix: "in WordPress, Users → Profile of an administrator → Application Passwords: create one and put it in WORDPRESS_APP_PASSWORD, and that user's login in WORDPRESS_USERNAME (over plain http WordPress also needs WP_ENVIRONMENT_TYPE local)"})
		return skipRest("the credentials were refused", capsName, compName, rolesName)
	case err != nil:
		out = append(out, checkLine{what: fmt.Sprintf("WordPress reachable at %s: %v", cfg.WordPressURL, err),
			fix: "check WORDPRESS_URL (the site's address, as its Settings → General shows it) and that the site is up"})
		return skipRest("the site did not answer", "application password", capsName, compName, rolesName)
	}
	out = append(out, checkLine{ok: true, what: "WordPress reachable at " + cfg.WordPressURL},
		checkLine{ok: true, what: fmt.Sprintf("application password of %q accepted (user %d)", me.Username, me.ID)})

	var missing []string
	for _, cp := range wordpress.RequiredCapabilities {
		if !me.Can(cp) {
			missing = append(missing, cp)
		}
	}
	if len(missing) > 0 {
		out = append(out, checkLine{what: fmt.Sprintf("user %q lacks the capabilities %s", me.Username, strings.Join(missing, ", ")),
			fix: "use an administrator's login and application password in WORDPRESS_USERNAME and WORDPRESS_APP_PASSWORD"})
	} else {
		out = append(out, checkLine{ok: true, what: capsName + " present"})
	}

	st, err := wp.Companion(ctx)
	switch {
	case errors.Is(err, wordpress.ErrCompanionMissing):
		out = append(out, checkLine{what: "companion plugin not installed (the site has no hlbridge/v1 routes)",
			fix: "copy wordpress/companion/hlbridge-companion.php into wp-content/mu-plugins/ on the site (create the folder if needed)"})
	case errors.Is(err, wordpress.ErrForbidden) && len(missing) > 0:
		// The route exists, so the plugin does; it shows its status only to
		// a user with the capabilities above.
		out = append(out, checkLine{skipped: true, what: "companion plugin installed; its version not checked, the user lacks the capabilities above"})
	case err != nil:
		out = append(out, checkLine{what: fmt.Sprintf("companion plugin: %v", err), fix: "see the error; run the check again"})
	case st.Outdated():
		out = append(out, checkLine{what: fmt.Sprintf("companion plugin is version %s, older than %s", st.Version, wordpress.MinCompanionVersion),
			fix: "replace wp-content/mu-plugins/hlbridge-companion.php with wordpress/companion/hlbridge-companion.php"})
	default:
		out = append(out, checkLine{ok: true, what: fmt.Sprintf("companion plugin %s installed (WordPress %s)", st.Version, st.WordPress)})
		if l, ok := metaIndexAdvice(st, cfg.ContactIDMetaKey); ok {
			out = append(out, l)
		}
	}

	roles := append([]string{cfg.DefaultRole}, cfg.AllowedRoles...)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	siteRoles, err := wp.Roles(ctx)
	switch {
	case st == nil || err != nil && len(missing) > 0:
		out = append(out, checkLine{skipped: true, what: "roles " + strings.Join(roles, ", ") + ": not checked, see the lines above"})
	case err != nil:
		out = append(out, checkLine{what: fmt.Sprintf("roles: %v", err), fix: "see the error; run the check again"})
	default:
		if err := checkRoles(cfg, wp, siteRoles); err != nil {
			for _, e := range strings.Split(err.Error(), "\n") {
				out = append(out, checkLine{what: e,
					fix: "fix BRIDGE_DEFAULT_ROLE / BRIDGE_ALLOWED_ROLES / BRIDGE_ROLE_RULES, or create the role on the site (e.g. with a membership plugin) without the capabilities named"})
			}
		} else {
			out = append(out, checkLine{ok: true, what: "roles " + strings.Join(roles, ", ") + " exist and grant no capability that could run the site"})
		}
	}
	if cfg.onDelete == bridge.DeactivateDelete {
		if err := cfg.resolveReassign(ctx, wp); err != nil {
			out = append(out, checkLine{what: err.Error(), fix: "set BRIDGE_REASSIGN_USER to the id or login of an existing user"})
		} else {
			out = append(out, checkLine{ok: true, what: fmt.Sprintf("deleted users' posts go to user %d (BRIDGE_REASSIGN_USER)", cfg.reassignID)})
		}
	}
	return out
}

// largeSite is how many users make a site large enough that a lookup by
// contact id without an index on meta values is slow: on the test site it
// took 24 ms with 8,286 linked users and 214–218 ms with 50,285 (14–15 ms
// with the index; README, "Large sites").
const largeSite = 10000

// metaIndexAdvice advises the index on user meta values when the site is
// large and has none; ok is false when there is nothing to say (or the
// companion is older than 1.4.1 and does not tell).
func metaIndexAdvice(st *wordpress.CompanionStatus, metaKey string) (checkLine, bool) {
	if st.MetaValueIndex == nil || *st.MetaValueIndex || st.Users < largeSite {
		return checkLine{}, false
	}
	return checkLine{ok: true, advice: true,
		what: fmt.Sprintf("the site has %d users and no index on user meta values: each sync's lookup by %s reads every linked user's row", st.Users, metaKey),
		fix:  fmt.Sprintf("add one (README, Large sites): ALTER TABLE %s ADD INDEX hlbridge_meta_value (meta_key(191), meta_value(32));", st.UsermetaTable)}, true
}

// checkHighLevel checks the token, the Version header and the location by
// reading the location's custom field catalogue, then resolves every
// custom field the configuration names.
func checkHighLevel(ctx context.Context, cfg *config, hl *highlevel.Client) []checkLine {
	fields := configuredFields(cfg)
	if hl == nil {
		out := []checkLine{{ok: true, what: "HighLevel: payload mode (no HIGHLEVEL_TOKEN): HighLevel's API is not used; contacts come from the webhook bodies"}}
		if len(fields) > 0 {
			out = append(out, checkLine{skipped: true, what: "custom fields: not resolved in payload mode; the webhook body's keys must match " + strings.Join(fieldNames(fields), ", ")})
		}
		return out
	}
	if cfg.HighLevelLocationID == "" {
		return []checkLine{{what: "HighLevel location: HIGHLEVEL_LOCATION_ID is empty",
			fix: "set HIGHLEVEL_LOCATION_ID to the sub-account's id (HighLevel: Settings → Business Profile): custom field keys, app events and import need it"}}
	}
	_, err := hl.CustomFields(ctx)
	switch {
	case errors.Is(err, highlevel.ErrUnauthorized):
		return []checkLine{{what: fmt.Sprintf("HighLevel refused the token or its Version header (%s): %v", highlevel.APIVersion, err),
			fix: "put a valid Private Integration token of the sub-account in HIGHLEVEL_TOKEN (HighLevel: Settings → Private Integrations)"}}
	case errors.Is(err, highlevel.ErrForbidden):
		return []checkLine{{what: fmt.Sprintf("HighLevel: the token may not read location %s: %v", cfg.HighLevelLocationID, err),
			fix: "check HIGHLEVEL_LOCATION_ID, and that the token belongs to that sub-account and has the contacts and custom fields scopes"}}
	case err != nil:
		return []checkLine{{what: fmt.Sprintf("HighLevel at %s: %v", cfg.HighLevelAPIURL, err), fix: "check HIGHLEVEL_API_URL and the network; run the check again"}}
	}
	out := []checkLine{{ok: true, what: fmt.Sprintf("HighLevel token and Version %s accepted; location %s readable", highlevel.APIVersion, cfg.HighLevelLocationID)}}
	for _, f := range fields {
		id, err := hl.CustomFieldID(ctx, f.key)
		switch {
		case errors.Is(err, highlevel.ErrUnknownCustomField):
			out = append(out, checkLine{what: fmt.Sprintf("custom field %q (%s) is not in location %s", f.key, f.variable, cfg.HighLevelLocationID),
				fix: fmt.Sprintf("create it in HighLevel (Settings → Custom Fields) or fix %s", f.variable)})
		case err != nil:
			out = append(out, checkLine{what: fmt.Sprintf("custom field %q (%s): %v", f.key, f.variable, err), fix: "run the check again"})
		default:
			out = append(out, checkLine{ok: true, what: fmt.Sprintf("custom field %q (%s) resolved to %s", f.key, f.variable, id)})
		}
	}
	return out
}

// configuredField is a custom field the configuration names, and where.
type configuredField struct{ key, variable string }

func configuredFields(cfg *config) []configuredField {
	var out []configuredField
	for _, f := range []configuredField{{cfg.UsernameField, "BRIDGE_USERNAME_FIELD"}, {cfg.PasswordField, "BRIDGE_PASSWORD_FIELD"},
		{cfg.ReturnPasswordField, "BRIDGE_RETURN_PASSWORD_FIELD"}, {cfg.ReturnLinkField, "BRIDGE_RETURN_LOGIN_LINK_FIELD"}} {
		if f.key != "" {
			out = append(out, f)
		}
	}
	for _, m := range cfg.fieldMap {
		if key, ok := m.CustomField(); ok {
			out = append(out, configuredField{key, "BRIDGE_FIELD_MAP " + m.Target})
		}
	}
	return out
}

func fieldNames(fs []configuredField) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.key)
	}
	return out
}

// checkStore opens the store as the server does (creating and migrating it
// if needed), without the server lock, so it works beside a running server,
// then proves it writable: a table created and a row inserted in a
// transaction that is rolled back.
func checkStore(ctx context.Context, dsn string) checkLine {
	postgres := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	name := dsn
	if postgres {
		if u, err := url.Parse(dsn); err == nil {
			name = u.Redacted()
		} else {
			name = "(a PostgreSQL URL)"
		}
	}
	fix := "check BRIDGE_DATABASE, and that this user may write the file and its folder (SQLite) or the database (PostgreSQL)"
	store, err := queue.OpenStore(ctx, dsn)
	if err != nil {
		return checkLine{what: fmt.Sprintf("store %s: %v", name, err), fix: fix}
	}
	store.Close()
	var db *sql.DB
	if postgres {
		db, err = sql.Open("pgx", dsn)
	} else {
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
		if _, serr := os.Stat(path); serr != nil {
			return checkLine{what: fmt.Sprintf("store %s: %v", name, serr), fix: fix}
		}
		db, err = sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}, "_txlock": {"immediate"}}.Encode())
	}
	if err != nil {
		return checkLine{what: fmt.Sprintf("store %s: %v", name, err), fix: fix}
	}
	defer db.Close()
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `CREATE TABLE hlbridge_check_write (x INTEGER)`); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO hlbridge_check_write (x) VALUES (1)`)
		return err
	}()
	if err != nil {
		return checkLine{what: fmt.Sprintf("store %s is not writable: %s", name, redactStoreErr(err, dsn)), fix: fix}
	}
	return checkLine{ok: true, what: fmt.Sprintf("store %s opens, is migrated and writable", name)}
}

// redactStoreErr keeps a database password out of a driver's error.
func redactStoreErr(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "REDACTED")
		}
	}
	return msg
}

// checkRoles checks the configured roles against the site's with the rule
// the server applies at start-up (bridge.Syncer.CheckRoles): each exists and
// grants no capability that could run the site.
func checkRoles(cfg *config, wp *wordpress.Client, siteRoles map[string]wordpress.Role) error {
	s, err := bridge.NewSyncer(bridge.Config{DefaultRole: cfg.DefaultRole, AllowedRoles: cfg.AllowedRoles,
		TagsMetaKey: cfg.TagsMetaKey, ContactIDMetaKey: cfg.ContactIDMetaKey}, wp, nil, nil)
	if err != nil {
		return err
	}
	return s.CheckRoles(siteRoles)
}
