package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
)

// command runs an hlbridge command with this world's full environment
// (overrides win); its output is checked for secrets like the servers'.
func (w *world) command(overrides []string, args ...string) cliResult {
	w.t.Helper()
	return runCLI(w.t, w.env(overrides...), w.track, args...)
}

// marked returns the lines of out that start with mark.
func marked(out, mark string) []string {
	var lines []string
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, mark) {
			lines = append(lines, line)
		}
	}
	return lines
}

// With a good setup every check passes, custom fields included, and the
// command exits 0.
func TestCheckGoodSetup(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	w.hl.AddCustomField(highlevel.CustomField{Name: "Plan", FieldKey: "contact.plan_key"})
	w.hl.AddCustomField(highlevel.CustomField{Name: "Login"})
	r := w.command([]string{"BRIDGE_FIELD_MAP=first_name=firstName,meta:plan=custom:plan_key", "BRIDGE_USERNAME_FIELD=login"}, "check")
	t.Logf("hlbridge check:\n%s", r.stdout)
	if r.code != 0 || len(marked(r.stdout, "✗")) > 0 || len(marked(r.stdout, "–")) > 0 {
		t.Fatalf("exit %d; want 0 and no ✗ or – line:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"✓ WordPress reachable", "✓ application password of", "✓ capabilities list_users create_users edit_users promote_users present",
		"✓ companion plugin 1.", "✓ roles customer, subscriber exist", "✓ HighLevel token and Version 2021-07-28 accepted",
		`✓ custom field "login" (BRIDGE_USERNAME_FIELD) resolved`, `✓ custom field "wp_password" (BRIDGE_RETURN_PASSWORD_FIELD) resolved`,
		`✓ custom field "plan_key" (BRIDGE_FIELD_MAP meta:plan) resolved`, "writable", "all checks passed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in the output", want)
		}
	}

	// Payload mode: HighLevel is not used, and says so.
	r = w.command([]string{"HIGHLEVEL_TOKEN=", "BRIDGE_RETURN_PASSWORD_FIELD="}, "check")
	if want := "✓ HighLevel: payload mode (no HIGHLEVEL_TOKEN): HighLevel's API is not used"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("payload mode: exit %d, want %q in:\n%s", r.code, want, r.stdout)
	}
}

// Each fault gives exactly one ✗ line, its own, with what to do; the
// checks that depend on it say they were not run.
func TestCheckFaults(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	login := "editor-" + strings.ToLower(testkit.RandomID(10))
	_, editorPassword := site.CreateUserWithAppPassword(t, login, "editor")
	noCompanion := companionlessProxy(t, site.URL)
	tests := []struct {
		name      string
		overrides []string
		want, fix string
	}{
		{"wrong application password", []string{"WORDPRESS_APP_PASSWORD=abcd efgh ijkl mnop qrst uvwx"},
			`✗ application password of "` + site.Username + `": WordPress did not accept it`, "Application Passwords"},
		{"user lacking capabilities", []string{"WORDPRESS_USERNAME=" + login, "WORDPRESS_APP_PASSWORD=" + editorPassword},
			`✗ user "` + login + `" lacks the capabilities list_users, create_users, edit_users, promote_users`, "an administrator's login"},
		{"missing companion", []string{"WORDPRESS_URL=" + noCompanion},
			"✗ companion plugin not installed", "hlbridge-companion.php into wp-content/mu-plugins/"},
		{"unknown custom field", []string{"BRIDGE_FIELD_MAP=meta:plan=custom:no_such_field"},
			`✗ custom field "no_such_field" (BRIDGE_FIELD_MAP meta:plan) is not in location`, "or fix BRIDGE_FIELD_MAP meta:plan"},
		{"missing role", []string{"BRIDGE_ALLOWED_ROLES=customer,no_such_role"},
			`✗ role "no_such_role" does not exist on the site`, "BRIDGE_ALLOWED_ROLES"},
		{"role that could run the site", []string{"BRIDGE_ALLOWED_ROLES=customer,editor"},
			`✗ role "editor" grants unfiltered_html`, "BRIDGE_ALLOWED_ROLES"},
		{"wrong HighLevel token", []string{"HIGHLEVEL_TOKEN=pit-wrong"},
			"✗ HighLevel refused the token", "HIGHLEVEL_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.command(tt.overrides, "check")
			t.Logf("hlbridge check:\n%s", r.stdout)
			if r.code == 0 {
				t.Errorf("exit 0 despite the fault")
			}
			failed := marked(r.stdout, "✗")
			if len(failed) != 1 || !strings.HasPrefix(failed[0], tt.want) {
				t.Errorf("✗ lines %q; want exactly one, starting %q", failed, tt.want)
			}
			if !strings.Contains(r.stdout, tt.fix) {
				t.Errorf("no fix mentioning %q", tt.fix)
			}
			if strings.Contains(r.stdout+r.stderr, editorPassword) {
				t.Errorf("the editor's application password was printed")
			}
		})
	}
}

// companionlessProxy serves the site at target as if the companion plugin
// were not installed: its routes answer WordPress's own rest_no_route. The
// shared test site itself is left alone.
func companionlessProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/wp-json/hlbridge/") || strings.HasPrefix(r.URL.Query().Get("rest_route"), "/hlbridge/") {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"code":"rest_no_route","message":"No route was found matching the URL and request method.","data":{"status":404}}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The index on user meta values is advised on a large site without one,
// with the site's own table name, and never fails the check; a small site,
// one with the index, and a companion older than 1.4.1 get no advice.
func TestMetaIndexAdvice(t *testing.T) {
	yes, no := true, false
	large := &wordpress.CompanionStatus{Users: largeSite, MetaValueIndex: &no, UsermetaTable: "wp_usermeta"}
	l, ok := metaIndexAdvice(large, "highlevel_contact_id")
	if !ok || !l.ok || !l.advice {
		t.Fatalf("large site without the index: %+v, %v; want a passing advice", l, ok)
	}
	for _, want := range []string{"! the site has 10000 users", "highlevel_contact_id",
		"→ add one (README, Large sites): ALTER TABLE wp_usermeta ADD INDEX hlbridge_meta_value (meta_key(191), meta_value(32));"} {
		if !strings.Contains(l.String(), want) {
			t.Errorf("advice %q lacks %q", l.String(), want)
		}
	}
	for name, st := range map[string]*wordpress.CompanionStatus{
		"small site":      {Users: largeSite - 1, MetaValueIndex: &no},
		"indexed":         {Users: 50000, MetaValueIndex: &yes},
		"companion 1.4.0": {Users: 50000},
	} {
		if l, ok := metaIndexAdvice(st, "highlevel_contact_id"); ok {
			t.Errorf("%s: advice %q, want none", name, l)
		}
	}
}
