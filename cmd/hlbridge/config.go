package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// config is every setting of hlbridge, read from the environment. The
// variable names are part of the product's contract: see the README.
type config struct {
	WordPressURL         string `env:"WORDPRESS_URL"`
	WordPressUsername    string `env:"WORDPRESS_USERNAME"`
	WordPressAppPassword string `env:"WORDPRESS_APP_PASSWORD"`

	HighLevelToken      string `env:"HIGHLEVEL_TOKEN"`
	HighLevelAPIURL     string `env:"HIGHLEVEL_API_URL, default=https://services.leadconnectorhq.com"`
	HighLevelLocationID string `env:"HIGHLEVEL_LOCATION_ID"`
	AppPublicKey        string `env:"HIGHLEVEL_APP_PUBLIC_KEY"`
	AppRSAPublicKey     string `env:"HIGHLEVEL_APP_RSA_PUBLIC_KEY"`

	AccessKey           string   `env:"BRIDGE_ACCESS_KEY"`
	Addr                string   `env:"BRIDGE_ADDR, default=:8080"`
	Database            string   `env:"BRIDGE_DATABASE, default=hlbridge.db"`
	DefaultRole         string   `env:"BRIDGE_DEFAULT_ROLE, default=subscriber"`
	AllowedRoles        []string `env:"BRIDGE_ALLOWED_ROLES"`
	UsernameField       string   `env:"BRIDGE_USERNAME_FIELD"`
	PasswordField       string   `env:"BRIDGE_PASSWORD_FIELD"`
	ReturnPasswordField string   `env:"BRIDGE_RETURN_PASSWORD_FIELD"`
	ReturnLinkField     string   `env:"BRIDGE_RETURN_LOGIN_LINK_FIELD"`
	RoleRules           string   `env:"BRIDGE_ROLE_RULES"`
	OnContactDelete     string   `env:"BRIDGE_ON_CONTACT_DELETE, default=ignore"`
	ReassignUser        string   `env:"BRIDGE_REASSIGN_USER"`
	DeactivateTag       string   `env:"BRIDGE_DEACTIVATE_TAG"`
	FieldMap            string   `env:"BRIDGE_FIELD_MAP, default=first_name=firstName,last_name=lastName"`
	TagsMetaKey         string   `env:"BRIDGE_TAGS_META_KEY, default=highlevel_tags"`
	ContactIDMetaKey    string   `env:"BRIDGE_CONTACT_ID_META_KEY, default=highlevel_contact_id"`
	LogLevel            string   `env:"BRIDGE_LOG_LEVEL, default=info"`

	AdminToken           string        `env:"BRIDGE_ADMIN_TOKEN"`
	TrustedProxies       []string      `env:"BRIDGE_TRUSTED_PROXIES"`
	AllowInsecureHTTP    bool          `env:"BRIDGE_ALLOW_INSECURE_HTTP, default=false"`
	WordPressConcurrency int           `env:"BRIDGE_WORDPRESS_CONCURRENCY, default=4"`
	HighLevelBudget      int           `env:"HIGHLEVEL_REQUESTS_PER_10S, default=90"`
	SyncByDefault        bool          `env:"BRIDGE_SYNC_DEFAULT, default=false"`
	SyncWait             time.Duration `env:"BRIDGE_SYNC_WAIT, default=10s"`
	JobTimeout           time.Duration `env:"BRIDGE_JOB_TIMEOUT, default=2m"`
	RescueAfter          time.Duration `env:"BRIDGE_RESCUE_AFTER"`
	MaxAttempts          int           `env:"BRIDGE_MAX_ATTEMPTS, default=60"`
	RetryBase            time.Duration `env:"BRIDGE_RETRY_BASE, default=2s"`
	DedupeWindow         time.Duration `env:"BRIDGE_DEDUPE_WINDOW, default=10m"`
	SettleWindow         time.Duration `env:"BRIDGE_SETTLE_WINDOW, default=1s"`
	EventRetention       time.Duration `env:"BRIDGE_EVENT_RETENTION, default=720h"`
	ShutdownTimeout      time.Duration `env:"BRIDGE_SHUTDOWN_TIMEOUT, default=30s"`

	fieldMap    []bridge.Mapping
	roleRules   []bridge.RoleRule
	onDelete    bridge.Deactivation
	reassignID  int64 // BRIDGE_REASSIGN_USER's id, resolved against WordPress by resolveReassign
	appVerifier *highlevel.Verifier
}

// loadConfig reads the environment through getenv and validates it. Every
// message names the variable and says what is wrong; none repeats a secret.
func loadConfig(ctx context.Context, getenv func(string) string) (*config, error) {
	var cfg config
	err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   &cfg,
		Lookuper: envconfig.LookuperFunc(func(key string) (string, bool) { v := getenv(key); return v, v != "" }),
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %s", envName(err.Error()))
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	required := map[string]string{
		"WORDPRESS_URL": cfg.WordPressURL, "WORDPRESS_USERNAME": cfg.WordPressUsername,
		"WORDPRESS_APP_PASSWORD": cfg.WordPressAppPassword, "BRIDGE_ACCESS_KEY": cfg.AccessKey,
	}
	for _, name := range []string{"WORDPRESS_URL", "WORDPRESS_USERNAME", "WORDPRESS_APP_PASSWORD", "BRIDGE_ACCESS_KEY"} {
		if strings.TrimSpace(required[name]) == "" {
			bad(name, "is required")
		}
	}
	if cfg.WordPressURL != "" {
		if u, err := url.Parse(cfg.WordPressURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("WORDPRESS_URL", "must be the site's http(s) address, e.g. https://example.com")
		} else if u.User != nil {
			bad("WORDPRESS_URL", "must not contain credentials; use WORDPRESS_USERNAME and WORDPRESS_APP_PASSWORD")
		}
	}
	if cfg.WordPressURL != "" && !cfg.AllowInsecureHTTP && cleartextRemote(cfg.WordPressURL) {
		bad("WORDPRESS_URL", "is plain http:// to a host that is not this machine: the application password would travel in clear text; use https://, or set BRIDGE_ALLOW_INSECURE_HTTP=true if the network in between is trusted")
	}
	if !cfg.AllowInsecureHTTP && cleartextRemote(cfg.HighLevelAPIURL) {
		bad("HIGHLEVEL_API_URL", "is plain http:// to a host that is not this machine: the HighLevel token would travel in clear text; use https://, or set BRIDGE_ALLOW_INSECURE_HTTP=true if the network in between is trusted")
	}
	for i, p := range cfg.TrustedProxies {
		p = strings.TrimSpace(p)
		cfg.TrustedProxies[i] = p
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad("BRIDGE_TRUSTED_PROXIES", "%q is not an IP address or CIDR (e.g. 10.0.0.0/8)", p)
		} else if ones, _ := prefixLen(p); ones == 0 {
			bad("BRIDGE_TRUSTED_PROXIES", "%q trusts every address: any client could then choose the address it is counted under", p)
		}
	}
	if cfg.AccessKey != "" && len(cfg.AccessKey) < 16 {
		bad("BRIDGE_ACCESS_KEY", "is too short: use at least 16 random characters")
	}
	if u, err := url.Parse(cfg.HighLevelAPIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("HIGHLEVEL_API_URL", "must be an http(s) URL")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		bad("BRIDGE_ADDR", "must be host:port or :port, e.g. :8080")
	}
	if cfg.HighLevelToken == "" {
		if cfg.ReturnPasswordField != "" {
			bad("BRIDGE_RETURN_PASSWORD_FIELD", "needs HIGHLEVEL_TOKEN: the password is written back through HighLevel's API")
		}
		if cfg.ReturnLinkField != "" {
			bad("BRIDGE_RETURN_LOGIN_LINK_FIELD", "needs HIGHLEVEL_TOKEN: the link is written back through HighLevel's API")
		}
	}
	if cfg.fieldMap, err = bridge.ParseFieldMap(cfg.FieldMap); err != nil {
		bad("BRIDGE_FIELD_MAP", "%v", err)
	}
	for i, r := range cfg.AllowedRoles {
		r = strings.TrimSpace(r)
		cfg.AllowedRoles[i] = r
		if r == "administrator" {
			bad("BRIDGE_ALLOWED_ROLES", "must not include administrator: a webhook may never make an administrator")
		}
	}
	if cfg.roleRules, err = bridge.ParseRoleRules(cfg.RoleRules); err != nil {
		bad("BRIDGE_ROLE_RULES", "%v", err)
	}
	for _, r := range cfg.roleRules {
		if r.Role != cfg.DefaultRole && !slices.Contains(cfg.AllowedRoles, r.Role) {
			bad("BRIDGE_ROLE_RULES", "%s=%s: role %q must be in BRIDGE_ALLOWED_ROLES or be BRIDGE_DEFAULT_ROLE", r.Tag, r.Role, r.Role)
		}
	}
	var ok bool
	if cfg.onDelete, ok = bridge.ParseDeactivation(strings.TrimSpace(cfg.OnContactDelete)); !ok {
		bad("BRIDGE_ON_CONTACT_DELETE", "must be ignore, unlink, strip_roles or delete")
	}
	cfg.ReassignUser, cfg.DeactivateTag = strings.TrimSpace(cfg.ReassignUser), strings.TrimSpace(cfg.DeactivateTag)
	if cfg.onDelete == bridge.DeactivateDelete && cfg.ReassignUser == "" {
		bad("BRIDGE_REASSIGN_USER", "is required with BRIDGE_ON_CONTACT_DELETE=delete: the id or login of the user who receives a deleted user's posts")
	}
	if cfg.DeactivateTag != "" && cfg.onDelete == bridge.DeactivateIgnore {
		bad("BRIDGE_DEACTIVATE_TAG", "needs BRIDGE_ON_CONTACT_DELETE set to unlink, strip_roles or delete: the tag applies that policy")
	}
	if cfg.DefaultRole == "administrator" {
		bad("BRIDGE_DEFAULT_ROLE", "must not be administrator")
	}
	if cfg.TagsMetaKey == cfg.ContactIDMetaKey {
		bad("BRIDGE_TAGS_META_KEY", "must differ from BRIDGE_CONTACT_ID_META_KEY")
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < 16 {
		bad("BRIDGE_ADMIN_TOKEN", "is too short: use at least 16 random characters")
	}
	if cfg.WordPressConcurrency < 1 || cfg.WordPressConcurrency > 64 {
		bad("BRIDGE_WORDPRESS_CONCURRENCY", "must be from 1 to 64")
	}
	if cfg.HighLevelBudget < 1 || cfg.HighLevelBudget > 100 {
		bad("HIGHLEVEL_REQUESTS_PER_10S", "must be from 1 to 100 (HighLevel allows 100 requests per 10 seconds)")
	}
	if cfg.SettleWindow < 0 || cfg.SettleWindow > time.Minute {
		bad("BRIDGE_SETTLE_WINDOW", "must be from 0 (no window) to 1m")
	}
	positive := map[string]time.Duration{"BRIDGE_SYNC_WAIT": cfg.SyncWait, "BRIDGE_JOB_TIMEOUT": cfg.JobTimeout,
		"BRIDGE_RETRY_BASE": cfg.RetryBase, "BRIDGE_DEDUPE_WINDOW": cfg.DedupeWindow, "BRIDGE_EVENT_RETENTION": cfg.EventRetention,
		"BRIDGE_SHUTDOWN_TIMEOUT": cfg.ShutdownTimeout}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] <= 0 {
			bad(name, "must be a positive duration such as 30s")
		}
	}
	if cfg.DedupeWindow > 0 && cfg.DedupeWindow < highlevel.DefaultFreshWindow {
		bad("BRIDGE_DEDUPE_WINDOW", "must be at least %s, the age up to which a signed app event is accepted (a shorter window would let a replay through)", highlevel.DefaultFreshWindow)
	}
	if cfg.appVerifier, err = highlevel.NewVerifier(cfg.AppPublicKey, cfg.AppRSAPublicKey); err != nil {
		bad("HIGHLEVEL_APP_PUBLIC_KEY / HIGHLEVEL_APP_RSA_PUBLIC_KEY", "%v", err)
	}
	if cfg.RescueAfter == 0 {
		cfg.RescueAfter = cfg.JobTimeout + time.Minute
	} else if cfg.RescueAfter <= cfg.JobTimeout {
		bad("BRIDGE_RESCUE_AFTER", "must be longer than BRIDGE_JOB_TIMEOUT (%s), or a running sync could be taken over", cfg.JobTimeout)
	}
	if cfg.MaxAttempts < 1 {
		bad("BRIDGE_MAX_ATTEMPTS", "must be at least 1")
	}
	if strings.TrimSpace(cfg.Database) == "" {
		bad("BRIDGE_DATABASE", "must be a SQLite file path or a postgres:// URL")
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		bad("BRIDGE_LOG_LEVEL", "must be debug, info, warn or error")
	}
	return &cfg, errors.Join(errs...)
}

// resolveReassign finds BRIDGE_REASSIGN_USER (an id or a login) on the
// site when users are deleted, so that a missing user stops the start
// rather than every deletion.
func (c *config) resolveReassign(ctx context.Context, wp *wordpress.Client) error {
	if c.onDelete != bridge.DeactivateDelete {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var u *wordpress.User
	var err error
	if id, perr := strconv.ParseInt(c.ReassignUser, 10, 64); perr == nil && id > 0 {
		u, err = wp.UserByID(ctx, id)
	} else {
		u, err = wp.UserByLogin(ctx, c.ReassignUser)
	}
	if err != nil {
		return fmt.Errorf("BRIDGE_REASSIGN_USER: no WordPress user %q: %w", c.ReassignUser, err)
	}
	c.reassignID = u.ID
	return nil
}

// cleartextRemote reports whether raw is an http:// URL whose host is not
// a loopback address (127.0.0.0/8, ::1, localhost): a secret sent there
// crosses a network unencrypted. Other names count as remote, even ones
// that resolve to this machine or to a private network: what matters is
// who can see the traffic, which the bridge cannot know. Unparsable URLs
// are left to the other checks.
func cleartextRemote(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// prefixLen returns the prefix length of a CIDR, or the full length of a
// bare address.
func prefixLen(p string) (ones int, ok bool) {
	if _, n, err := net.ParseCIDR(p); err == nil {
		ones, _ = n.Mask.Size()
		return ones, true
	}
	if ip := net.ParseIP(p); ip != nil {
		return 8 * len(ip), true
	}
	return -1, false
}

// highLevelConfig is the HighLevel client's configuration.
func (c *config) highLevelConfig() highlevel.Config {
	return highlevel.Config{BaseURL: c.HighLevelAPIURL, Token: c.HighLevelToken, LocationID: c.HighLevelLocationID,
		RequestsPer10s: c.HighLevelBudget}
}

// envName rewrites go-envconfig's "Field: problem" into "VARIABLE: problem",
// so a parse error names what the operator set.
func envName(msg string) string {
	t := reflect.TypeFor[config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if rest, ok := strings.CutPrefix(msg, f.Name+": "); ok && name != "" {
			return name + ": " + rest
		}
	}
	return msg
}
