package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/internal/testkit"
)

// Secrets the configuration tests pass in; no error message may repeat them.
const (
	testAppPassword = "abcd EFGH ijkl MNOP qrst UVWX"
	testAccessKey   = "access-key-0123456789abcdef"
	testHLToken     = "pit-0123456789abcdef0123456789abcdef"
	testAdminToken  = "admin-token-0123456789abcdef"
	testURLPassword = "url-password-in-the-address"
	testShortKey    = "short-key-123"
)

// validEnv is a configuration that passes validation (nothing listens on
// its WordPress URL: these tests never get that far).
func validEnv() map[string]string {
	return map[string]string{
		"WORDPRESS_URL":          "http://127.0.0.1:9",
		"WORDPRESS_USERNAME":     "admin",
		"WORDPRESS_APP_PASSWORD": testAppPassword,
		"BRIDGE_ACCESS_KEY":      testAccessKey,
		"HIGHLEVEL_TOKEN":        testHLToken,
		"BRIDGE_ADMIN_TOKEN":     testAdminToken,
	}
}

// The configuration is checked before anything starts: every problem is
// reported at once, each message names its variable and says what is wrong,
// and none repeats a secret.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string // over validEnv; nil env: empty environment
		want []string          // variables the error must name
	}{
		{"empty environment", nil, []string{"WORDPRESS_URL", "WORDPRESS_USERNAME", "WORDPRESS_APP_PASSWORD", "BRIDGE_ACCESS_KEY"}},
		{"bad field map", map[string]string{"BRIDGE_FIELD_MAP": "nope"}, []string{"BRIDGE_FIELD_MAP"}},
		{"administrator allowed", map[string]string{"BRIDGE_ALLOWED_ROLES": "administrator"}, []string{"BRIDGE_ALLOWED_ROLES"}},
		{"administrator among allowed roles", map[string]string{"BRIDGE_ALLOWED_ROLES": "customer, administrator"}, []string{"BRIDGE_ALLOWED_ROLES"}},
		{"role rule without a role", map[string]string{"BRIDGE_ROLE_RULES": "gold"}, []string{"BRIDGE_ROLE_RULES"}},
		{"role rule with a role not allowed", map[string]string{"BRIDGE_ALLOWED_ROLES": "silver_member", "BRIDGE_ROLE_RULES": "gold=gold_member,silver=silver_member"}, []string{"BRIDGE_ROLE_RULES"}},
		{"role rule tag twice", map[string]string{"BRIDGE_ALLOWED_ROLES": "gold_member", "BRIDGE_ROLE_RULES": "gold=gold_member,Gold=subscriber"}, []string{"BRIDGE_ROLE_RULES"}},
		{"unknown deactivation policy", map[string]string{"BRIDGE_ON_CONTACT_DELETE": "archive"}, []string{"BRIDGE_ON_CONTACT_DELETE"}},
		{"delete without a reassign user", map[string]string{"BRIDGE_ON_CONTACT_DELETE": "delete"}, []string{"BRIDGE_REASSIGN_USER"}},
		{"deactivation tag without a policy", map[string]string{"BRIDGE_DEACTIVATE_TAG": "cancelled"}, []string{"BRIDGE_DEACTIVATE_TAG"}},
		{"login link without a token", map[string]string{"HIGHLEVEL_TOKEN": "", "BRIDGE_RETURN_LOGIN_LINK_FIELD": "wp_link"}, []string{"BRIDGE_RETURN_LOGIN_LINK_FIELD"}},
		{"administrator by default", map[string]string{"BRIDGE_DEFAULT_ROLE": "administrator"}, []string{"BRIDGE_DEFAULT_ROLE"}},
		{"no WordPress concurrency", map[string]string{"BRIDGE_WORDPRESS_CONCURRENCY": "0"}, []string{"BRIDGE_WORDPRESS_CONCURRENCY"}},
		{"WordPress concurrency not a number", map[string]string{"BRIDGE_WORDPRESS_CONCURRENCY": "many"}, []string{"BRIDGE_WORDPRESS_CONCURRENCY"}},
		{"address without port", map[string]string{"BRIDGE_ADDR": "x"}, []string{"BRIDGE_ADDR"}},
		{"short access key", map[string]string{"BRIDGE_ACCESS_KEY": testShortKey}, []string{"BRIDGE_ACCESS_KEY"}},
		{"short admin token", map[string]string{"BRIDGE_ADMIN_TOKEN": "admin-short"}, []string{"BRIDGE_ADMIN_TOKEN"}},
		{"credentials in the WordPress URL", map[string]string{"WORDPRESS_URL": "https://admin:" + testURLPassword + "@example.com"}, []string{"WORDPRESS_URL"}},
		{"WordPress URL not http", map[string]string{"WORDPRESS_URL": "ftp://example.com"}, []string{"WORDPRESS_URL"}},
		{"HighLevel URL not http", map[string]string{"HIGHLEVEL_API_URL": "services.leadconnectorhq.com"}, []string{"HIGHLEVEL_API_URL"}},
		{"HighLevel budget over the limit", map[string]string{"HIGHLEVEL_REQUESTS_PER_10S": "500"}, []string{"HIGHLEVEL_REQUESTS_PER_10S"}},
		{"password returned without a token", map[string]string{"HIGHLEVEL_TOKEN": "", "BRIDGE_RETURN_PASSWORD_FIELD": "wp_password"}, []string{"BRIDGE_RETURN_PASSWORD_FIELD"}},
		{"zero job timeout", map[string]string{"BRIDGE_JOB_TIMEOUT": "0s"}, []string{"BRIDGE_JOB_TIMEOUT"}},
		{"job timeout not a duration", map[string]string{"BRIDGE_JOB_TIMEOUT": "soon"}, []string{"BRIDGE_JOB_TIMEOUT"}},
		{"negative shutdown timeout", map[string]string{"BRIDGE_SHUTDOWN_TIMEOUT": "-1s"}, []string{"BRIDGE_SHUTDOWN_TIMEOUT"}},
		{"negative settle window", map[string]string{"BRIDGE_SETTLE_WINDOW": "-1s"}, []string{"BRIDGE_SETTLE_WINDOW"}},
		{"settle window over a minute", map[string]string{"BRIDGE_SETTLE_WINDOW": "5m"}, []string{"BRIDGE_SETTLE_WINDOW"}},
		{"no attempts", map[string]string{"BRIDGE_MAX_ATTEMPTS": "0"}, []string{"BRIDGE_MAX_ATTEMPTS"}},
		{"unknown log level", map[string]string{"BRIDGE_LOG_LEVEL": "loud"}, []string{"BRIDGE_LOG_LEVEL"}},
		{"tags and contact id in one meta key", map[string]string{"BRIDGE_TAGS_META_KEY": "highlevel_contact_id"}, []string{"BRIDGE_TAGS_META_KEY"}},
		{"blank database", map[string]string{"BRIDGE_DATABASE": " "}, []string{"BRIDGE_DATABASE"}},
		{"WordPress over http to another host", map[string]string{"WORDPRESS_URL": "http://example.com"}, []string{"WORDPRESS_URL"}},
		{"HighLevel over http to another host", map[string]string{"HIGHLEVEL_API_URL": "http://services.leadconnectorhq.com"}, []string{"HIGHLEVEL_API_URL"}},
		{"trusted proxy not an address", map[string]string{"BRIDGE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, []string{"BRIDGE_TRUSTED_PROXIES"}},
		{"two problems at once", map[string]string{"BRIDGE_ADDR": "x", "BRIDGE_FIELD_MAP": "nope"}, []string{"BRIDGE_ADDR", "BRIDGE_FIELD_MAP"}},
	}
	all := []string{}
	for name := range validEnv() {
		all = append(all, name)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.env != nil {
				env = validEnv()
				for k, v := range tc.env {
					env[k] = v
				}
			}
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"hlbridge"}, func(k string) string { return env[k] }, &stdout, &stderr)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
			msg := err.Error()
			for _, name := range tc.want {
				if !strings.Contains(msg, name) {
					t.Errorf("the error does not name %s:\n%s", name, msg)
				}
			}
			// Only what is wrong is blamed: each problem is a line "NAME: what".
			for line := range strings.SplitSeq(msg, "\n") {
				for _, name := range all {
					if !slices.Contains(tc.want, name) && strings.HasPrefix(line, name+":") {
						t.Errorf("the error blames %s, which is fine:\n%s", name, msg)
					}
				}
			}
			for _, secret := range []string{testAppPassword, testAccessKey, testHLToken, testAdminToken, testURLPassword, testShortKey, "admin-short"} {
				if strings.Contains(msg, secret) || strings.Contains(stdout.String()+stderr.String(), secret) {
					t.Errorf("a secret (%.6s...) appears in the error or the output:\n%s", secret, msg)
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("a configuration error printed to stdout: %q", stdout.String())
			}
		})
	}
}

// What an operator sees when the bridge cannot start although its
// configuration is well-formed: the binary exits 1 with one clear line on
// stderr, no panic, no secret.
func TestStartupFailures(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	cases := []struct {
		name    string
		env     map[string]string
		mention []string
	}{
		{"wrong application password", map[string]string{"WORDPRESS_APP_PASSWORD": "wrong password 0000 1111"},
			[]string{site.URL, "application password", site.Username}},
		{"WordPress unreachable", map[string]string{"WORDPRESS_URL": "http://127.0.0.1:9"},
			[]string{"http://127.0.0.1:9"}},
		{"store cannot be created", map[string]string{"BRIDGE_DATABASE": "/proc/hlbridge-test/hlbridge.db"},
			[]string{"/proc/hlbridge-test/hlbridge.db"}}, // which store, for the operator to fix
		{"address in use", map[string]string{"BRIDGE_ADDR": taken.Addr().String()},
			[]string{taken.Addr().String()}},
		{"bad configuration", map[string]string{"BRIDGE_ADDR": "x"},
			[]string{"BRIDGE_ADDR"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"WORDPRESS_URL": site.URL, "WORDPRESS_USERNAME": site.Username, "WORDPRESS_APP_PASSWORD": site.AppPassword,
				"BRIDGE_ACCESS_KEY": testAccessKey, "BRIDGE_ADDR": freeAddr(t),
				"BRIDGE_DATABASE": filepath.Join(t.TempDir(), "hlbridge.db"),
			}
			for k, v := range tc.env {
				env[k] = v
			}
			var list []string
			for k, v := range env {
				list = append(list, k+"="+v)
			}
			start := time.Now()
			r := runCLI(t, list, func(*testkit.LogBuffer) {})
			out := r.stdout + r.stderr
			if r.code != 1 {
				t.Fatalf("exit status %d, want 1; output:\n%s", r.code, tail(out, 20))
			}
			last := tail(strings.TrimSpace(r.stderr), 1)
			if !strings.HasPrefix(last, "hlbridge: ") {
				t.Errorf("the last line is not hlbridge's error: %q", last)
			}
			for _, m := range tc.mention {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr does not mention %q:\n%s", m, tail(r.stderr, 10))
				}
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("the binary crashed:\n%s", tail(out, 30))
			}
			for _, secret := range []string{site.AppPassword, testAccessKey, "wrong password 0000 1111"} {
				if strings.Contains(out, secret) {
					t.Errorf("a secret (%.6s...) appears in the output", secret)
				}
			}
			t.Logf("exit 1 after %s: %s", time.Since(start).Round(time.Millisecond), last)
		})
	}
}

// Secrets never cross a network in clear text unless the operator says the
// network is trusted: a plain http:// WordPress or HighLevel address is
// refused unless it is this machine, or BRIDGE_ALLOW_INSECURE_HTTP=true.
func TestTransportRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		// refused names the variable blamed and what the message must say;
		// empty: the configuration is accepted.
		refused string
		risk    string
	}{
		{"https WordPress", map[string]string{"WORDPRESS_URL": "https://example.com"}, "", ""},
		{"http WordPress elsewhere", map[string]string{"WORDPRESS_URL": "http://example.com"}, "WORDPRESS_URL", "application password would travel in clear text"},
		{"http WordPress on a private network", map[string]string{"WORDPRESS_URL": "http://10.0.0.5:8080"}, "WORDPRESS_URL", "application password"},
		{"HTTP in capitals", map[string]string{"WORDPRESS_URL": "HTTP://example.com"}, "WORDPRESS_URL", "application password"},
		{"a name that starts like loopback", map[string]string{"WORDPRESS_URL": "http://127.0.0.1.example.com"}, "WORDPRESS_URL", "application password"},
		{"http WordPress allowed by the operator", map[string]string{"WORDPRESS_URL": "http://example.com", "BRIDGE_ALLOW_INSECURE_HTTP": "true"}, "", ""},
		{"loopback 127.0.0.1", map[string]string{"WORDPRESS_URL": "http://127.0.0.1:8080"}, "", ""},
		{"loopback 127.8.9.10", map[string]string{"WORDPRESS_URL": "http://127.8.9.10"}, "", ""},
		{"loopback ::1", map[string]string{"WORDPRESS_URL": "http://[::1]:8080"}, "", ""},
		{"localhost", map[string]string{"WORDPRESS_URL": "http://localhost:8080/blog"}, "", ""},
		{"localhost in capitals", map[string]string{"WORDPRESS_URL": "http://LocalHost"}, "", ""},
		{"http HighLevel elsewhere", map[string]string{"HIGHLEVEL_API_URL": "http://services.leadconnectorhq.com"}, "HIGHLEVEL_API_URL", "HighLevel token would travel in clear text"},
		{"http HighLevel allowed by the operator", map[string]string{"HIGHLEVEL_API_URL": "http://hl.example", "BRIDGE_ALLOW_INSECURE_HTTP": "true"}, "", ""},
		{"http HighLevel on loopback", map[string]string{"HIGHLEVEL_API_URL": "http://127.0.0.1:9999"}, "", ""},
		{"the override is not a flag", map[string]string{"BRIDGE_ALLOW_INSECURE_HTTP": "perhaps"}, "BRIDGE_ALLOW_INSECURE_HTTP", ""},
		{"trusted proxies", map[string]string{"BRIDGE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1,::1"}, "", ""},
		{"trusting every address", map[string]string{"BRIDGE_TRUSTED_PROXIES": "0.0.0.0/0"}, "BRIDGE_TRUSTED_PROXIES", "trusts every address"},
		{"trusted proxy by name", map[string]string{"BRIDGE_TRUSTED_PROXIES": "proxy.internal"}, "BRIDGE_TRUSTED_PROXIES", "not an IP address or CIDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := validEnv()
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := loadConfig(context.Background(), func(k string) string { return env[k] })
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.refused+": ") {
				t.Errorf("the error does not blame %s:\n%s", tc.refused, msg)
			}
			if !strings.Contains(msg, tc.risk) {
				t.Errorf("the error does not say %q:\n%s", tc.risk, msg)
			}
			if strings.Contains(tc.risk, "clear text") && !strings.Contains(msg, "BRIDGE_ALLOW_INSECURE_HTTP=true") {
				t.Errorf("the error does not name the override:\n%s", msg)
			}
		})
	}
}
