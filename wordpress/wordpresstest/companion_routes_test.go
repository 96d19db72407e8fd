package wordpresstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests prove the companion plugin's routes (wordpress/companion) over real HTTP.

// metaReply is the answer of the meta routes.
type metaReply struct {
	ID   int64          `json:"id"`
	Meta map[string]any `json:"meta"`
}

// metaBody encodes {"meta":{k1:v1,k2:v2,...}} with the keys in the order given
// (json.Marshal would sort them), so that a refused key can follow a good one.
func metaBody(t *testing.T, kv ...any) json.RawMessage {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"meta":{`)
	for i := 0; i+1 < len(kv); i += 2 {
		k, err1 := json.Marshal(kv[i])
		v, err2 := json.Marshal(kv[i+1])
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}}")
	return json.RawMessage(b.String())
}

func metaRoute(id int64) string { return "/hlbridge/v1/users/" + strconv.FormatInt(id, 10) + "/meta" }

func notifyRoute(id int64) string {
	return "/hlbridge/v1/users/" + strconv.FormatInt(id, 10) + "/notify"
}

// metaExists asks WordPress whether the user has the key at all.
func metaExists(t *testing.T, id int64, key string) bool {
	t.Helper()
	return site.Eval(t, `echo metadata_exists('user', (int) $args[0], $args[1]) ? 'yes' : 'no';`,
		strconv.FormatInt(id, 10), key) == "yes"
}

func TestCompanionStatus(t *testing.T) {
	t.Parallel()
	r := adminClient(site).do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil)
	r.want(t, http.StatusOK, "")
	var got map[string]any
	r.decode(t, &got)
	// Other tests add users and may index user meta meanwhile: these two
	// are checked for their type only.
	if users, ok := got["users"].(float64); !ok || users < 1 {
		t.Errorf("users = %v, want a count of at least 1", got["users"])
	}
	if _, ok := got["meta_value_index"].(bool); !ok {
		t.Errorf("meta_value_index = %v, want a boolean", got["meta_value_index"])
	}
	delete(got, "users")
	delete(got, "meta_value_index")
	want := map[string]any{
		"plugin":         "hlbridge-companion",
		"version":        "1.4.1",
		"wordpress":      site.Eval(t, `echo get_bloginfo('version');`),
		"multisite":      false,
		"meta_prefix":    "wp_",
		"usermeta_table": "wp_usermeta",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status = %v, want %v", got, want)
	}
	if v := site.Eval(t, `echo HLBRIDGE_COMPANION_VERSION;`); v != "1.4.1" {
		t.Errorf("HLBRIDGE_COMPANION_VERSION = %q", v)
	}
}

func TestCompanionMetaRoundTrip(t *testing.T) {
	t.Parallel()
	id, _ := newUser(t, site)
	c := adminClient(site)
	note := `He said "hi" \o/ – naïve ✓ 'quoted' \\server\share`
	looksSerialized := `a:1:{i:0;s:1:"x";}`

	r := c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{
		"hlbridge_note":        note,
		"highlevel_tags":       []string{"t1", "t2"},
		"highlevel_contact_id": "AbC123xyz",
		"hlbridge_serialized":  looksSerialized,
		"hlbridge_number":      42,
		"hlbridge_float":       1.5,
		"hlbridge_bool":        true,
		"hlbridge_empty_list":  []string{},
		"hlbridge_mixed_list":  []any{"a", 7, false},
	}})
	r.want(t, http.StatusOK, "")
	var got metaReply
	r.decode(t, &got)
	wantMeta := map[string]any{
		"hlbridge_note":        note,
		"highlevel_tags":       []any{"t1", "t2"},
		"highlevel_contact_id": "AbC123xyz",
		"hlbridge_serialized":  looksSerialized,
		"hlbridge_number":      "42",
		"hlbridge_float":       "1.5",
		"hlbridge_bool":        "1",
		"hlbridge_empty_list":  []any{},
		"hlbridge_mixed_list":  []any{"a", "7", "0"},
	}
	if got.ID != id || !reflect.DeepEqual(got.Meta, wantMeta) {
		t.Fatalf("POST answered %+v, want id %d meta %v", got, id, wantMeta)
	}

	// What WordPress really stored: the list PHP-serialized, exactly as WP Fusion stores
	// highlevel_tags; strings untouched (no slashes stripped, no unserializing).
	rawWant := map[string]string{
		"highlevel_tags":      `a:2:{i:0;s:2:"t1";i:1;s:2:"t2";}`,
		"hlbridge_note":       note,
		"hlbridge_serialized": `s:18:"a:1:{i:0;s:1:"x";}";`,
		"hlbridge_empty_list": `a:0:{}`,
	}
	for key, want := range rawWant {
		if raw := site.UserMetaRaw(t, id, key); raw != want {
			t.Errorf("raw %s = %q, want %q", key, raw, want)
		}
	}
	if got := site.Eval(t, `echo wp_json_encode(get_user_meta((int) $args[0], 'highlevel_tags', true));`, strconv.FormatInt(id, 10)); got != `["t1","t2"]` {
		t.Errorf("get_user_meta(highlevel_tags) = %s", got)
	}

	// Read back, with both ways of naming keys; a missing key is null.
	for name, q := range map[string]url.Values{
		"comma list": {"keys": {"hlbridge_note,highlevel_tags,hlbridge_missing"}},
		"keys[]":     {"keys[]": {"hlbridge_note", "highlevel_tags", "hlbridge_missing"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := c.do(t, http.MethodGet, metaRoute(id), q, nil)
			r.want(t, http.StatusOK, "")
			var got metaReply
			r.decode(t, &got)
			want := map[string]any{"hlbridge_note": note, "highlevel_tags": []any{"t1", "t2"}, "hlbridge_missing": nil}
			if got.ID != id || !reflect.DeepEqual(got.Meta, want) {
				t.Errorf("GET answered %+v, want %v", got, want)
			}
		})
	}

	// An update replaces the list.
	r = c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"highlevel_tags": []string{"t3"}}})
	r.want(t, http.StatusOK, "")
	if raw := site.UserMetaRaw(t, id, "highlevel_tags"); raw != `a:1:{i:0;s:2:"t3";}` {
		t.Errorf("after update, raw highlevel_tags = %q", raw)
	}
}

func TestCompanionMetaDeleteWithNull(t *testing.T) {
	t.Parallel()
	id, _ := newUser(t, site)
	c := adminClient(site)
	c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"hlbridge_gone": "x", "hlbridge_kept": "y"}}).want(t, http.StatusOK, "")

	r := c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"hlbridge_gone": nil}})
	r.want(t, http.StatusOK, "")
	if body := strings.TrimSpace(string(r.body)); body != fmt.Sprintf(`{"id":%d,"meta":{"hlbridge_gone":null}}`, id) {
		t.Errorf("delete answered %s", body)
	}
	if metaExists(t, id, "hlbridge_gone") {
		t.Error("hlbridge_gone still exists after writing null")
	}
	if !metaExists(t, id, "hlbridge_kept") {
		t.Error("hlbridge_kept was deleted too")
	}
	// Deleting what is not there is fine.
	c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"hlbridge_gone": nil}}).want(t, http.StatusOK, "")
}

func TestCompanionProtectedMetaKeys(t *testing.T) {
	t.Parallel()
	id, _ := newUser(t, site)
	c := adminClient(site)
	capsBefore := site.UserMetaRaw(t, id, "wp_capabilities")
	if !strings.Contains(capsBefore, "customer") {
		t.Fatalf("raw wp_capabilities = %q, want the customer role", capsBefore)
	}

	// The group ends when all its parallel subtests have.
	t.Run("keys", func(t *testing.T) {
		for i, key := range []string{
			"wp_capabilities", "_secret", "session_tokens", "wp_user_level", "wp_user-settings",
			"WP_Capabilities", "Session_Tokens", "wp_capabilities ", " wp_capabilities",
			"other_capabilities", "legacy_user_level", "default_password_nag",
			"user_pass", "user_login", "user_email", "_edit_lock", "",
			strings.Repeat("k", 256), "wp_2_highlevel_tags", "clé", "tab\tkey",
			// Every site's capabilities and user level on a multisite network.
			"wp_2_capabilities", "wp_2_user_level", "wp_15_capabilities", "WP_2_Capabilities",
			// Application passwords (WP_Application_Passwords::USERMETA_KEY_APPLICATION_PASSWORDS)
			// and password-reset keys.
			"_application_passwords", "_Application_Passwords", "user_activation_key",
		} {
			t.Run(fmt.Sprintf("%.40q", key), func(t *testing.T) {
				t.Parallel()
				good := "hlbridge_good_" + strconv.Itoa(i)
				// The good key first: refusing the second must undo nothing, because
				// nothing was written yet.
				r := c.do(t, http.MethodPost, metaRoute(id), nil, metaBody(t, good, "written?", key, []string{"administrator"}))
				r.want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
				var e struct {
					Message string `json:"message"`
					Data    struct {
						Status int `json:"status"`
					} `json:"data"`
				}
				r.decode(t, &e)
				if e.Data.Status != 400 || (len(key) < 80 && !strings.Contains(e.Message, `"`+key+`"`)) {
					t.Errorf("error body %s does not name the key", r.body)
				}
				if metaExists(t, id, good) {
					t.Errorf("%s was written although %q was refused in the same request", good, key)
				}

				c.do(t, http.MethodGet, metaRoute(id), url.Values{"keys[]": {good, key}}, nil).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
				if !strings.Contains(key, ",") && key != "" {
					c.do(t, http.MethodGet, metaRoute(id), url.Values{"keys": {good + "," + key}}, nil).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
				}
				if key != "" {
					c.do(t, http.MethodGet, "/hlbridge/v1/users", url.Values{"meta_key": {key}, "meta_value": {"x"}}, nil).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
				}
			})
		}
	})
	if after := site.UserMetaRaw(t, id, "wp_capabilities"); after != capsBefore {
		t.Errorf("wp_capabilities changed from %q to %q", capsBefore, after)
	}
}

func TestCompanionInvalidMeta(t *testing.T) {
	t.Parallel()
	id, _ := newUser(t, site)
	c := adminClient(site)
	for name, tc := range map[string]struct {
		body any
		code string
	}{
		"object value":    {metaBody(t, "hlbridge_ok", "x", "hlbridge_obj", map[string]any{"a": "b"}), "hlbridge_invalid_meta_value"},
		"nested list":     {metaBody(t, "hlbridge_ok", "x", "hlbridge_nested", []any{"a", []string{"b"}}), "hlbridge_invalid_meta_value"},
		"null in list":    {metaBody(t, "hlbridge_ok", "x", "hlbridge_nulls", []any{"a", nil}), "hlbridge_invalid_meta_value"},
		"meta not object": {map[string]any{"meta": "hlbridge_ok"}, "hlbridge_invalid_meta"},
		"meta a list":     {map[string]any{"meta": []string{"hlbridge_ok"}}, "hlbridge_invalid_meta"},
		"empty meta":      {map[string]any{"meta": map[string]any{}}, "hlbridge_no_keys"},
		"no meta":         {map[string]any{}, "hlbridge_no_keys"},
		"no body":         {nil, "hlbridge_no_keys"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c.do(t, http.MethodPost, metaRoute(id), nil, tc.body).want(t, http.StatusBadRequest, tc.code)
			if metaExists(t, id, "hlbridge_ok") {
				t.Error("hlbridge_ok was written by a refused request")
			}
		})
	}
	// PHP decodes {} and [] alike, so an empty object is taken for an empty list.
	r := c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"hlbridge_empty": map[string]any{}}})
	r.want(t, http.StatusOK, "")
	var got metaReply
	r.decode(t, &got)
	if v := got.Meta["hlbridge_empty"]; !reflect.DeepEqual(v, []any{}) {
		t.Errorf("{} stored as %v", got.Meta)
	}
	c.do(t, http.MethodGet, metaRoute(id), nil, nil).want(t, http.StatusBadRequest, "hlbridge_no_keys")
	c.do(t, http.MethodGet, metaRoute(id), url.Values{"keys": {""}}, nil).want(t, http.StatusBadRequest, "hlbridge_no_keys")
}

func TestCompanionFindUsersByMeta(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	first, _ := newUser(t, site)
	second, _ := newUser(t, site)
	other, _ := newUser(t, site)
	// A unique, mixed-case contact id, like HighLevel's.
	_, random, _ := strings.Cut(strings.TrimSuffix(UniqueEmail(t), "@example.test"), "+")
	contact := "Ct" + random
	// Written in reverse order: the answer is still ascending.
	for _, id := range []int64{second, first} {
		c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"highlevel_contact_id": contact}}).want(t, http.StatusOK, "")
	}
	c.do(t, http.MethodPost, metaRoute(other), nil, map[string]any{"meta": map[string]any{"highlevel_contact_id": strings.ToLower(contact)}}).want(t, http.StatusOK, "")

	find := func(key, value string) []int64 {
		t.Helper()
		r := c.do(t, http.MethodGet, "/hlbridge/v1/users", url.Values{"meta_key": {key}, "meta_value": {value}}, nil)
		r.want(t, http.StatusOK, "")
		var got struct {
			Users []int64 `json:"users"`
		}
		r.decode(t, &got)
		if got.Users == nil {
			t.Fatalf("users is not a list: %s", r.body)
		}
		return got.Users
	}
	if got := find("highlevel_contact_id", contact); !reflect.DeepEqual(got, []int64{first, second}) {
		t.Errorf("find %s = %v, want [%d %d]", contact, got, first, second)
	}
	// Exact match: contact ids are case-sensitive, and trailing spaces count.
	if got := find("highlevel_contact_id", strings.ToLower(contact)); !reflect.DeepEqual(got, []int64{other}) {
		t.Errorf("find lower-case = %v, want [%d]", got, other)
	}
	if got := find("highlevel_contact_id", contact+" "); len(got) != 0 {
		t.Errorf("find with a trailing space = %v, want none", got)
	}
	if got := find("HIGHLEVEL_CONTACT_ID", contact); len(got) != 0 {
		t.Errorf("find with an upper-case key = %v, want none", got)
	}
	if got := find("highlevel_contact_id", "no-such-contact"); len(got) != 0 {
		t.Errorf("find unknown = %v, want none", got)
	}

	for name, q := range map[string]url.Values{
		"no value": {"meta_key": {"highlevel_contact_id"}},
		"no key":   {"meta_value": {contact}},
		"empty":    {"meta_key": {"highlevel_contact_id"}, "meta_value": {""}},
		"nothing":  nil,
		"email not a string": {"meta_key": {"highlevel_contact_id"}, "meta_value": {contact},
			"email[]": {"a@example.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			c.do(t, http.MethodGet, "/hlbridge/v1/users", q, nil).want(t, http.StatusBadRequest, "hlbridge_missing_param")
		})
	}
}

func TestCompanionNotify(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	id, email := newUser(t, site)

	// No body: notify defaults to "user".
	r := c.do(t, http.MethodPost, notifyRoute(id), nil, nil)
	r.want(t, http.StatusOK, "")
	if body := strings.TrimSpace(string(r.body)); body != fmt.Sprintf(`{"id":%d,"sent":true,"notify":"user"}`, id) {
		t.Errorf("notify answered %s", body)
	}
	m := site.WaitMail(t, email, 10*time.Second)
	if !strings.Contains(m.Subject, "Login Details") || !reflect.DeepEqual(m.To, []string{email}) {
		t.Errorf("mail to %v subject %q, want Login Details to %s", m.To, m.Subject, email)
	}
	if !strings.Contains(m.Message, "action=rp") {
		t.Errorf("mail has no password-setting link:\n%s", m.Message)
	}

	// "admin": the site administrator hears about the user, the user gets nothing more.
	r = c.do(t, http.MethodPost, notifyRoute(id), nil, map[string]string{"notify": "admin"})
	r.want(t, http.StatusOK, "")
	if body := strings.TrimSpace(string(r.body)); body != fmt.Sprintf(`{"id":%d,"sent":true,"notify":"admin"}`, id) {
		t.Errorf("notify admin answered %s", body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		for _, m := range site.Mails(t) {
			found = found || (m.sentTo("admin@example.test") && strings.Contains(m.Message, email))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to the administrator about %s", email)
		}
		time.Sleep(mailPoll)
	}
	count := 0
	for _, m := range site.Mails(t) {
		if m.sentTo(email) {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%s got %d mails, want 1", email, count)
	}

	c.do(t, http.MethodPost, notifyRoute(id), nil, map[string]string{"notify": "everyone"}).want(t, http.StatusBadRequest, "hlbridge_invalid_notify")
}

func TestCompanionPermissions(t *testing.T) {
	t.Parallel()
	target, _ := newUser(t, site)
	login := strings.ReplaceAll(strings.TrimSuffix(UniqueEmail(t), "@example.test"), "+", "_")
	subscriberID, subscriberPassword := site.CreateUserWithAppPassword(t, login, "subscriber")

	type call struct {
		method, route string
		query         url.Values
		body          any
	}
	calls := func(id int64) map[string]call {
		return map[string]call{
			"status":     {http.MethodGet, "/hlbridge/v1/status", nil, nil},
			"find":       {http.MethodGet, "/hlbridge/v1/users", url.Values{"meta_key": {"highlevel_contact_id"}, "meta_value": {"x"}}, nil},
			"get meta":   {http.MethodGet, metaRoute(id), url.Values{"keys": {"highlevel_tags"}}, nil},
			"write meta": {http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]any{"highlevel_tags": []string{"vip"}}}},
			"notify":     {http.MethodPost, notifyRoute(id), nil, map[string]string{"notify": "user"}},
		}
	}
	for name, tc := range map[string]struct {
		client client
		id     int64
		status int
		code   string
	}{
		"anonymous":                  {client{base: site.URL}, target, http.StatusUnauthorized, "rest_not_logged_in"},
		"wrong application password": {client{base: site.URL, user: site.Username, password: "abcdABCD1234abcdABCD1234"}, target, http.StatusUnauthorized, ""},
		"subscriber on another user": {client{base: site.URL, user: login, password: subscriberPassword}, target, http.StatusForbidden, "rest_forbidden"},
		// WordPress lets users edit themselves; these routes must not let them tag themselves.
		"subscriber on itself": {client{base: site.URL, user: login, password: subscriberPassword}, subscriberID, http.StatusForbidden, "rest_forbidden"},
	} {
		t.Run(name, func(t *testing.T) {
			for route, call := range calls(tc.id) {
				r := tc.client.do(t, call.method, call.route, call.query, call.body)
				if r.status != tc.status || (tc.code != "" && r.code() != tc.code) {
					t.Errorf("%s: got %d %q, want %d %q: %s", route, r.status, r.code(), tc.status, tc.code, shorten(string(r.body), 300))
				}
			}
		})
	}
	for _, id := range []int64{target, subscriberID} {
		if metaExists(t, id, "highlevel_tags") {
			t.Errorf("user %d got highlevel_tags from a refused request", id)
		}
	}
}

func TestCompanionUnknownUser(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	const missing = int64(987654321)
	c.do(t, http.MethodGet, metaRoute(missing), url.Values{"keys": {"highlevel_tags"}}, nil).want(t, http.StatusNotFound, "rest_user_invalid_id")
	c.do(t, http.MethodPost, metaRoute(missing), nil, map[string]any{"meta": map[string]any{"highlevel_tags": []string{"a"}}}).want(t, http.StatusNotFound, "rest_user_invalid_id")
	c.do(t, http.MethodPost, notifyRoute(missing), nil, map[string]string{"notify": "user"}).want(t, http.StatusNotFound, "rest_user_invalid_id")
}

// With pending_key the notify route sends only while the flag is set and
// deletes it first: of several calls at once, one sends, and the user gets
// one mail.
func TestCompanionNotifyPendingOnce(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	id, email := newUser(t, site)
	c.do(t, http.MethodPost, metaRoute(id), nil, map[string]any{"meta": map[string]string{"hlbridge_pending_notification": "1"}}).
		want(t, http.StatusOK, "")

	const calls = 6
	bodies := make([]string, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			r := c.do(t, http.MethodPost, notifyRoute(id), nil, map[string]string{"pending_key": "hlbridge_pending_notification"})
			if r.status == http.StatusOK {
				bodies[i] = strings.TrimSpace(string(r.body))
			}
		})
	}
	wg.Wait()
	sent := 0
	for _, body := range bodies {
		switch body {
		case fmt.Sprintf(`{"id":%d,"sent":true,"notify":"user","pending":true}`, id):
			sent++
		case fmt.Sprintf(`{"id":%d,"sent":false,"notify":"user","pending":false}`, id):
		default:
			t.Errorf("notify answered %q", body)
		}
	}
	if sent != 1 {
		t.Errorf("%d calls sent the mail, want 1", sent)
	}
	site.WaitMail(t, email, 10*time.Second)
	if n := mailsTo(t, email); n != 1 {
		t.Errorf("%d mails to %s, want 1", n, email)
	}
	if raw := site.UserMetaRaw(t, id, "hlbridge_pending_notification"); raw != "" {
		t.Errorf("the flag is still set: %q", raw)
	}
	// A protected key is refused as everywhere else.
	c.do(t, http.MethodPost, notifyRoute(id), nil, map[string]string{"pending_key": "wp_capabilities"}).
		want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
}

func mailsTo(t *testing.T, email string) int {
	n := 0
	for _, m := range site.Mails(t) {
		if m.sentTo(email) {
			n++
		}
	}
	return n
}

// WordPress checks a new user's email without a lock and wp_users has no
// unique index on it: the companion makes creating a user atomic per email.
// Several creates of one new email at once, each with its own login, make
// exactly one user; the others get WordPress's duplicate-email answer.
func TestCompanionOneUserPerEmail(t *testing.T) {
	t.Parallel()
	site.SlowEmailCheck(t)
	c := adminClient(site)
	const rounds, creates = 3, 5
	for round := range rounds {
		email := SlowEmailCheckMarker + UniqueEmail(t)
		// Differing case: WordPress compares emails ignoring it, so must the lock.
		statuses := make([]int, creates)
		codes := make([]string, creates)
		var wg sync.WaitGroup
		for i := range creates {
			wg.Go(func() {
				addr := email
				if i%2 == 1 {
					addr = strings.ToUpper(email[:1]) + email[1:]
				}
				r := c.do(t, http.MethodPost, "/wp/v2/users", nil, map[string]any{
					"username": fmt.Sprintf("oneemail-%d-%d-%s", round, i, email[strings.IndexByte(email, '+')+1:strings.IndexByte(email, '@')]),
					"email":    addr,
					"password": "Aa1!" + strings.Repeat("x", 20),
				})
				statuses[i], codes[i] = r.status, r.code()
			})
		}
		wg.Wait()
		created := 0
		for i := range creates {
			switch {
			case statuses[i] == http.StatusCreated:
				created++
			case codes[i] != "existing_user_email":
				t.Errorf("round %d create %d: %d %q, want 201 or existing_user_email", round, i, statuses[i], codes[i])
			}
		}
		n := strings.TrimSpace(site.Eval(t, `global $wpdb; echo (int) $wpdb->get_var($wpdb->prepare("SELECT COUNT(*) FROM {$wpdb->users} WHERE user_email = %s", $args[0]));`, email))
		if created != 1 || n != "1" {
			t.Errorf("round %d: %d answered 201 and %s users have the email, want 1 and 1", round, created, n)
		}
	}
}

// The email lock is released on every path: after a create that succeeded,
// one refused by WordPress and one refused for a missing capability, the
// next create of the email does not wait for it.
func TestCompanionEmailLockReleased(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	email := UniqueEmail(t)
	user := func(login string) map[string]any {
		return map[string]any{"username": login + "-" + strings.TrimSuffix(strings.ReplaceAll(email, "+", "-"), "@example.test"),
			"email": email, "password": "Aa1!" + strings.Repeat("x", 20)}
	}
	c.do(t, http.MethodPost, "/wp/v2/users", nil, user("first")).want(t, http.StatusCreated, "")
	c.do(t, http.MethodPost, "/wp/v2/users", nil, user("second")).want(t, http.StatusInternalServerError, "existing_user_email")
	login := "lockcheck-" + strings.TrimSuffix(strings.ReplaceAll(UniqueEmail(t), "+", "-"), "@example.test")
	_, pw := site.CreateUserWithAppPassword(t, login, "subscriber")
	sub := client{base: site.URL, user: login, password: pw}
	sub.do(t, http.MethodPost, "/wp/v2/users", nil, user("third")).want(t, http.StatusForbidden, "")
	got := strings.TrimSpace(site.Eval(t, `global $wpdb;
echo $wpdb->get_var($wpdb->prepare('SELECT IS_FREE_LOCK(%s)', 'hlbridge_email_' . md5(strtolower($args[0]))));`, email))
	if got != "1" {
		t.Errorf("IS_FREE_LOCK = %q, want 1: a request kept the lock", got)
	}
	start := time.Now()
	c.do(t, http.MethodPost, "/wp/v2/users", nil, user("fourth")).want(t, http.StatusInternalServerError, "existing_user_email")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a create waited %v for the lock", d)
	}
}

// findOrCreateReply is the answer of POST /hlbridge/v1/users.
type findOrCreateReply struct {
	Users   []int64        `json:"users"`
	User    map[string]any `json:"user"`
	Created bool           `json:"created"`
}

// POST /hlbridge/v1/users finds the user as GET does and creates it, as
// POST /wp/v2/users does, only when there is none.
func TestCompanionFindOrCreate(t *testing.T) {
	t.Parallel()
	c := adminClient(site)
	email := UniqueEmail(t)
	_, random, _ := strings.Cut(strings.TrimSuffix(email, "@example.test"), "+")
	contact := "Fc" + random
	newUser := func(email string, meta map[string]any) map[string]any {
		return map[string]any{
			"username": "foc_" + strings.NewReplacer("@", "_", "+", "_").Replace(email),
			"email":    email, "password": "Aa1!" + strings.Repeat("x", 20), "roles": []string{"subscriber"},
			"first_name": "Find", "hlbridge_meta": meta,
		}
	}
	call := func(contact string, user map[string]any) reply {
		t.Helper()
		return c.do(t, http.MethodPost, "/hlbridge/v1/users", nil, map[string]any{
			"meta_key": "highlevel_contact_id", "meta_value": contact, "user": user})
	}
	userID := func(got findOrCreateReply) int64 {
		id, _ := got.User["id"].(float64)
		return int64(id)
	}

	// None: created, with its meta, and shown as GET /wp/v2/users/{id}?context=edit shows it.
	r := call(contact, newUser(email, map[string]any{"highlevel_contact_id": contact, "highlevel_tags": []string{"a", "b"}}))
	r.want(t, http.StatusCreated, "")
	var got findOrCreateReply
	r.decode(t, &got)
	id := userID(got)
	if !got.Created || id == 0 || len(got.Users) != 0 {
		t.Fatalf("first call: %s; want a new user", r.body)
	}
	var shown map[string]any
	c.do(t, http.MethodGet, "/wp/v2/users/"+strconv.FormatInt(id, 10), url.Values{"context": {"edit"}}, nil).decode(t, &shown)
	delete(shown, "_links")
	delete(got.User, "_links")
	if !reflect.DeepEqual(got.User, shown) {
		t.Errorf("the new user as answered:\n%v\nas GET shows it:\n%v", got.User, shown)
	}
	var meta metaReply
	c.do(t, http.MethodGet, metaRoute(id), url.Values{"keys": {"highlevel_contact_id,highlevel_tags"}}, nil).decode(t, &meta)
	if want := map[string]any{"highlevel_contact_id": contact, "highlevel_tags": []any{"a", "b"}}; !reflect.DeepEqual(meta.Meta, want) {
		t.Errorf("its meta = %v, want %v", meta.Meta, want)
	}

	// Found by the contact id, also when the email has changed since: nothing created.
	r = call(contact, newUser("changed-"+email, nil))
	r.want(t, http.StatusOK, "")
	got = findOrCreateReply{}
	r.decode(t, &got)
	if got.Created || userID(got) != id || !reflect.DeepEqual(got.Users, []int64{id}) {
		t.Errorf("by contact id: %s; want user %d found", shorten(string(r.body), 300), id)
	}
	// Found by the email, in another case, for a contact without a user.
	r = call(contact+"-other", newUser(strings.ToUpper(email), nil))
	r.want(t, http.StatusOK, "")
	got = findOrCreateReply{}
	r.decode(t, &got)
	if got.Created || userID(got) != id || len(got.Users) != 0 {
		t.Errorf("by email: %s; want user %d found", shorten(string(r.body), 300), id)
	}

	// A refused create answers as POST /wp/v2/users would, and creates nothing.
	taken := newUser("login-taken-"+email, nil)
	taken["username"] = newUser(email, nil)["username"]
	call(contact+"-login", taken).want(t, http.StatusInternalServerError, "existing_user_login")
	r = call(contact+"-meta", newUser("protected-"+email, map[string]any{"wp_capabilities": "x"}))
	r.want(t, http.StatusBadRequest, "rest_invalid_param")
	if !strings.Contains(string(r.body), "hlbridge_protected_meta_key") {
		t.Errorf("a protected meta key: %s; want hlbridge_protected_meta_key in the details", shorten(string(r.body), 300))
	}
	for _, e := range []string{"login-taken-" + email, "protected-" + email} {
		if n := site.Eval(t, `echo email_exists($args[0]) ? 'yes' : 'no';`, e); n != "no" {
			t.Errorf("a refused create made user %s", e)
		}
	}

	for name, body := range map[string]map[string]any{
		"no user":            {"meta_key": "highlevel_contact_id", "meta_value": contact},
		"user without email": {"meta_key": "highlevel_contact_id", "meta_value": contact, "user": map[string]any{"username": "x"}},
		"user not an object": {"meta_key": "highlevel_contact_id", "meta_value": contact, "user": "x"},
		"no meta value":      {"meta_key": "highlevel_contact_id", "user": newUser("nometa-"+email, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			c.do(t, http.MethodPost, "/hlbridge/v1/users", nil, body).want(t, http.StatusBadRequest, "hlbridge_missing_param")
		})
	}
	call(contact, map[string]any{"email": "x@example.test"}).want(t, http.StatusOK, "") // found: the user is not checked
	c.do(t, http.MethodPost, "/hlbridge/v1/users", nil, map[string]any{"meta_key": "wp_capabilities", "meta_value": "x",
		"user": newUser("capkey-"+email, nil)}).want(t, http.StatusBadRequest, "hlbridge_protected_meta_key")
}

// Concurrent find-or-creates of one new person make one user: the others
// wait for the email lock and are told the email is taken.
func TestCompanionFindOrCreateOneUserPerEmail(t *testing.T) {
	t.Parallel()
	site.SlowEmailCheck(t)
	c := adminClient(site)
	email := SlowEmailCheckMarker + UniqueEmail(t)
	const calls = 5
	statuses := make([]int, calls)
	codes := make([]string, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			r := c.do(t, http.MethodPost, "/hlbridge/v1/users", nil, map[string]any{
				"meta_key": "highlevel_contact_id", "meta_value": fmt.Sprintf("race-%d-%s", i, email),
				"user": map[string]any{"username": fmt.Sprintf("race-%d-%s", i, email[strings.IndexByte(email, '+')+1:strings.IndexByte(email, '@')]),
					"email": email, "password": "Aa1!" + strings.Repeat("x", 20)},
			})
			statuses[i], codes[i] = r.status, r.code()
		})
	}
	wg.Wait()
	created := 0
	for i := range calls {
		switch {
		case statuses[i] == http.StatusCreated:
			created++
		case statuses[i] == http.StatusOK: // found: it looked after the first was created
		case codes[i] != "existing_user_email":
			t.Errorf("call %d: %d %q, want 201, 200 or existing_user_email", i, statuses[i], codes[i])
		}
	}
	n := strings.TrimSpace(site.Eval(t, `global $wpdb; echo (int) $wpdb->get_var($wpdb->prepare("SELECT COUNT(*) FROM {$wpdb->users} WHERE user_email = %s", $args[0]));`, email))
	if created != 1 || n != "1" {
		t.Errorf("%d answered 201 and %s users have the email, want 1 and 1 (statuses %v)", created, n, statuses)
	}
}

// Concurrent updates that give one email to several users leave it with
// one of them: the others wait for the email lock and are told, as
// WordPress tells, that the address is invalid.
func TestCompanionOneUserPerEmailOnUpdate(t *testing.T) {
	t.Parallel()
	site.SlowEmailCheck(t)
	c := adminClient(site)
	const rounds, updates = 2, 4
	for round := range rounds {
		var ids []int64
		for range updates {
			id, _ := newUser(t, site)
			ids = append(ids, id)
		}
		email := SlowEmailCheckMarker + UniqueEmail(t)
		statuses := make([]int, updates)
		codes := make([]string, updates)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				addr := email
				if i%2 == 1 {
					addr = strings.ToUpper(email[:1]) + email[1:]
				}
				r := c.do(t, http.MethodPost, "/wp/v2/users/"+strconv.FormatInt(id, 10), nil, map[string]any{"email": addr})
				statuses[i], codes[i] = r.status, r.code()
			})
		}
		wg.Wait()
		changed := 0
		for i := range updates {
			switch {
			case statuses[i] == http.StatusOK:
				changed++
			case codes[i] != "rest_user_invalid_email":
				t.Errorf("round %d update %d: %d %q, want 200 or rest_user_invalid_email", round, i, statuses[i], codes[i])
			}
		}
		n := strings.TrimSpace(site.Eval(t, `global $wpdb; echo (int) $wpdb->get_var($wpdb->prepare("SELECT COUNT(*) FROM {$wpdb->users} WHERE user_email = %s", $args[0]));`, email))
		if changed != 1 || n != "1" {
			t.Errorf("round %d: %d answered 200 and %s users have the email, want 1 and 1", round, changed, n)
		}
	}
	// A user keeps its own email (in another case, too) without waiting on itself.
	id, own := newUser(t, site)
	c.do(t, http.MethodPost, "/wp/v2/users/"+strconv.FormatInt(id, 10), nil, map[string]any{"email": strings.ToUpper(own[:1]) + own[1:], "first_name": "Same"}).want(t, http.StatusOK, "")
}
