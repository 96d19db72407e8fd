package wordpresstest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// These tests audit the companion plugin's security over real HTTP: each
// route admits only the capability it names, a subscriber's application
// password reaches nothing, and on a multisite network every site's
// capabilities stay out of reach while super admins are reported.

// capClient creates a user holding a new role with exactly caps, with an
// application password, and returns a client that calls as that user.
func capClient(t *testing.T, s *Site, caps ...string) (client, int64) {
	t.Helper()
	suffix := strings.TrimSuffix(strings.SplitN(UniqueEmail(t), "+", 2)[1], "@example.test")
	role := "hlbtest_" + strings.Join(caps, "_") + "_" + suffix
	s.AddRole(t, role, caps...)
	login := "capuser_" + suffix
	id, password := s.CreateUserWithAppPassword(t, login, role)
	return client{base: s.URL, user: login, password: password}, id
}

// Each route checks the capability its permission callback names, not a
// login: a user with list_users may look but not touch meta, one with
// edit_users may touch meta but not look users up or mail them.
func TestCompanionRoutesNeedCapabilities(t *testing.T) {
	t.Parallel()
	target, targetEmail := newUser(t, site)
	lister, _ := capClient(t, site, "list_users")
	editor, _ := capClient(t, site, "edit_users")
	creator, _ := capClient(t, site, "create_users", "edit_users")
	// The user found is shown in the edit context, which needs edit_users.
	finder, _ := capClient(t, site, "list_users", "create_users", "edit_users")
	type call struct {
		method, route string
		query         url.Values
		body          any
	}
	routes := map[string]call{
		"status":     {http.MethodGet, "/hlbridge/v1/status", nil, nil},
		"find":       {http.MethodGet, "/hlbridge/v1/users", url.Values{"meta_key": {"highlevel_contact_id"}, "meta_value": {"x"}}, nil},
		"get meta":   {http.MethodGet, metaRoute(target), url.Values{"keys": {"highlevel_tags"}}, nil},
		"write meta": {http.MethodPost, metaRoute(target), nil, map[string]any{"meta": map[string]any{"hlbridge_cap_probe": "x"}}},
		"notify":     {http.MethodPost, notifyRoute(target), nil, map[string]string{"notify": "admin"}},
		// Finds target by its email, so that an allowed call creates nothing.
		"find or create": {http.MethodPost, "/hlbridge/v1/users", nil, map[string]any{"meta_key": "highlevel_contact_id", "meta_value": "x",
			"user": map[string]string{"username": "capprobe", "email": targetEmail, "password": "Aa1!" + strings.Repeat("x", 20)}}},
	}
	ok, no := http.StatusOK, http.StatusForbidden
	for name, tc := range map[string]struct {
		client client
		want   map[string]int
	}{
		"list_users only":             {lister, map[string]int{"status": ok, "find": ok, "get meta": no, "write meta": no, "notify": no, "find or create": no}},
		"edit_users only":             {editor, map[string]int{"status": no, "find": no, "get meta": ok, "write meta": ok, "notify": no, "find or create": no}},
		"create_users and edit_users": {creator, map[string]int{"status": no, "find": no, "get meta": ok, "write meta": ok, "notify": ok, "find or create": no}},
		"list, create and edit users": {finder, map[string]int{"status": ok, "find": ok, "get meta": ok, "write meta": ok, "notify": ok, "find or create": ok}},
	} {
		t.Run(name, func(t *testing.T) {
			for route, want := range tc.want {
				c := routes[route]
				r := tc.client.do(t, c.method, c.route, c.query, c.body)
				if r.status != want || (want == no && r.code() != "rest_forbidden") {
					t.Errorf("%s: got %d %q, want %d: %s", route, r.status, r.code(), want, shorten(string(r.body), 300))
				}
			}
		})
	}
}

// A subscriber's application password can use neither the routes (see
// TestCompanionPermissions) nor the hlbridge_meta field on itself, and
// cannot make itself a super admin through the read-only field.
func TestCompanionUserFieldsRefuseSubscriber(t *testing.T) {
	t.Parallel()
	login := strings.ReplaceAll(strings.TrimSuffix(UniqueEmail(t), "@example.test"), "+", "_")
	id, password := site.CreateUserWithAppPassword(t, login, "subscriber")
	sub := client{base: site.URL, user: login, password: password}
	for _, route := range []string{"/wp/v2/users/me", "/wp/v2/users/" + strconv.FormatInt(id, 10)} {
		r := sub.do(t, http.MethodPost, route, nil, map[string]any{"hlbridge_meta": map[string]any{"highlevel_tags": []string{"vip"}}})
		if r.status != http.StatusBadRequest && r.status != http.StatusForbidden {
			t.Errorf("POST %s with hlbridge_meta as a subscriber: %d %s", route, r.status, shorten(string(r.body), 300))
		}
	}
	if metaExists(t, id, "highlevel_tags") {
		t.Error("a subscriber tagged itself through hlbridge_meta")
	}
	sub.do(t, http.MethodPost, "/wp/v2/users/me", nil, map[string]any{"hlbridge_super_admin": true, "first_name": "Sub"}).want(t, http.StatusOK, "")
	r := sub.do(t, http.MethodGet, "/wp/v2/users/me", url.Values{"context": {"edit"}}, nil)
	r.want(t, http.StatusOK, "")
	var me struct {
		FirstName  string   `json:"first_name"`
		Roles      []string `json:"roles"`
		SuperAdmin *bool    `json:"hlbridge_super_admin"`
	}
	r.decode(t, &me)
	if me.SuperAdmin == nil || *me.SuperAdmin || me.FirstName != "Sub" || strings.Join(me.Roles, ",") != "subscriber" {
		t.Errorf("subscriber after the attempt: %+v", me)
	}
}

// On a multisite network the companion refuses every site's capabilities
// and user level, whatever site the key names, and reports super admins,
// who core REST shows only by their role on the site.
func TestCompanionMultisite(t *testing.T) {
	t.Parallel()
	network, stop, err := StartMultisite()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	admin := adminClient(network)
	r := admin.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil)
	r.want(t, http.StatusOK, "")
	var status struct {
		Multisite  bool   `json:"multisite"`
		MetaPrefix string `json:"meta_prefix"`
	}
	r.decode(t, &status)
	if !status.Multisite || status.MetaPrefix != "wp_" {
		t.Fatalf("status = %+v, want a multisite network with prefix wp_", status)
	}

	// A second site, and a user who is a subscriber of both: wp_2_capabilities exists.
	email := UniqueEmail(t)
	id := network.CreateUser(t, email, "subscriber")
	network.Eval(t, `$net = get_network();
$blog = wpmu_create_blog($net->domain, $net->path . 'two/', 'Two', 1);
if (is_wp_error($blog)) { fwrite(STDERR, $blog->get_error_message()); exit(1); }
if (2 !== (int) $blog) { fwrite(STDERR, "the second site has id $blog"); exit(1); }
$added = add_user_to_blog(2, (int) $args[0], 'subscriber');
if (is_wp_error($added)) { fwrite(STDERR, $added->get_error_message()); exit(1); }`, strconv.FormatInt(id, 10))
	capsBefore := network.UserMetaRaw(t, id, "wp_2_capabilities")
	if !strings.Contains(capsBefore, "subscriber") {
		t.Fatalf("raw wp_2_capabilities = %q, want the subscriber role", capsBefore)
	}
	for _, key := range []string{"wp_2_capabilities", "wp_2_user_level", "WP_2_CAPABILITIES", "wp_3_capabilities", "wp_capabilities", "_application_passwords", "session_tokens"} {
		admin.do(t, http.MethodPost, metaRoute(id), nil, metaBody(t, key, "a:1:{s:13:\"administrator\";b:1;}")).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
		admin.do(t, http.MethodGet, metaRoute(id), url.Values{"keys": {key}}, nil).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
		admin.do(t, http.MethodGet, "/hlbridge/v1/users", url.Values{"meta_key": {key}, "meta_value": {"x"}}, nil).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
		r := admin.do(t, http.MethodPost, "/wp/v2/users/"+strconv.FormatInt(id, 10), nil,
			map[string]any{"first_name": "Mallory", "hlbridge_meta": map[string]any{key: "x"}})
		if r.status != http.StatusBadRequest {
			t.Errorf("hlbridge_meta with %s: %d %s", key, r.status, shorten(string(r.body), 300))
		}
	}
	if after := network.UserMetaRaw(t, id, "wp_2_capabilities"); after != capsBefore {
		t.Errorf("wp_2_capabilities changed from %q to %q", capsBefore, after)
	}

	superAdmin := func(uid int64) bool {
		t.Helper()
		r := admin.do(t, http.MethodGet, "/wp/v2/users/"+strconv.FormatInt(uid, 10), url.Values{"context": {"edit"}}, nil)
		r.want(t, http.StatusOK, "")
		var u struct {
			FirstName  string `json:"first_name"`
			SuperAdmin *bool  `json:"hlbridge_super_admin"`
		}
		r.decode(t, &u)
		if u.SuperAdmin == nil {
			t.Fatalf("user %d has no hlbridge_super_admin: %s", uid, shorten(string(r.body), 300))
		}
		if u.FirstName == "Mallory" {
			t.Errorf("a refused hlbridge_meta request changed user %d", uid)
		}
		return *u.SuperAdmin
	}
	if !superAdmin(1) || superAdmin(id) {
		t.Fatalf("super admin: admin %v, subscriber %v; want true, false", superAdmin(1), superAdmin(id))
	}
	// Read-only: sending the field changes nothing.
	admin.do(t, http.MethodPost, "/wp/v2/users/"+strconv.FormatInt(id, 10), nil, map[string]any{"hlbridge_super_admin": true}).want(t, http.StatusOK, "")
	if superAdmin(id) {
		t.Error("POST hlbridge_super_admin=true made a super admin")
	}
	network.GrantSuperAdmin(t, id)
	if !superAdmin(id) {
		t.Error("a granted super admin is not reported")
	}
}
