package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/bridgetest"
	"github.com/hlbridge/hlbridge/bridge/httpapi"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// These tests send webhooks to the bridge's HTTP intake and check the
// result in a real WordPress (started once for the package by TestMain),
// with the fake HighLevel API standing in for HighLevel.

var site *wordpresstest.Site

func TestMain(m *testing.M) { wordpresstest.Main(m, &site) }

// bundle is what one end-to-end test works with.
type bundle struct {
	hl    *highleveltest.Server // nil in payload mode
	wp    *wordpress.Client
	url   string // the bridge
	key   string // the access key
	admin string // the admin token
	logs  *testkit.LogBuffer
	me    *wordpress.User // the WordPress administrator
	queue *queue.Queue    // nil with the inline dispatcher
}

// settings are what options change before setup builds the bridge.
type settings struct {
	cfg       bridge.Config
	payload   bool
	queue     *queue.Config // nil: inline
	dsn       string        // the queue's store; "" for SQLite in a temp dir
	wordpress string        // the URL the bridge uses for WordPress; "" for the site
	wrapUsers func(bridge.Users) bridge.Users
	wrapHL    func(bridge.Contacts) bridge.Contacts
	server    httpapi.Config
	metrics   *metrics.Metrics
	verifier  *highlevel.Verifier
	site      *wordpresstest.Site // the WordPress; nil for the package's shared one
}

type option func(*settings)

// payloadMode runs the bridge without a HighLevel token.
func payloadMode(s *settings) { s.payload = true }

func withConfig(f func(*bridge.Config)) option { return func(s *settings) { f(&s.cfg) } }

// withQueue runs the bridge on the durable queue.
func withQueue(qc queue.Config) option { return func(s *settings) { s.queue = &qc } }

// setup starts a bridge against the real WordPress and a fresh fake
// HighLevel, logging everything (debug level) into b.logs.
func setup(t *testing.T, opts ...option) *bundle {
	t.Helper()
	b := &bundle{key: "key-" + testkit.RandomID(24), admin: "admin-" + testkit.RandomID(24), logs: &testkit.LogBuffer{}}
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fieldMap, err := bridge.ParseFieldMap("first_name=firstName,last_name=lastName,meta:company=companyName")
	if err != nil {
		t.Fatal(err)
	}
	st := settings{cfg: bridge.Config{
		DefaultRole: "subscriber", AllowedRoles: []string{"customer"}, FieldMap: fieldMap,
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id",
	}}
	for _, o := range opts {
		o(&st)
	}
	wps := site
	if st.site != nil {
		wps = st.site
	}
	wpURL := wps.URL
	if st.wordpress != "" {
		wpURL = st.wordpress
	}
	wp, err := wordpress.New(wordpress.Config{URL: wpURL, Username: wps.Username, AppPassword: wps.AppPassword,
		Logger: logger, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.wp = wp
	if b.me, err = wp.Me(context.Background()); err != nil && st.wordpress == "" {
		t.Fatal(err)
	}
	var users bridge.Users = st.metrics.Users(wp)
	if st.wrapUsers != nil {
		users = st.wrapUsers(users)
	}
	var contacts bridge.Contacts
	if !st.payload {
		b.hl = highleveltest.New(t)
		hc := b.hl.Config()
		hc.Logger = logger
		hl, err := highlevel.New(hc)
		if err != nil {
			t.Fatal(err)
		}
		contacts = hl
		if st.wrapHL != nil {
			contacts = st.wrapHL(hl)
		}
		st.server.LocationID = b.hl.LocationID
	}
	syncer, err := bridge.NewSyncer(st.cfg, users, contacts, logger)
	if err != nil {
		t.Fatal(err)
	}
	deps := httpapi.Deps{Syncer: syncer, Dispatcher: bridgetest.Inline{Syncer: syncer}, Logger: logger,
		Metrics: st.metrics, AppVerifier: st.verifier}
	st.server.AccessKey = b.key
	if st.queue != nil {
		dsn := st.dsn
		if dsn == "" {
			dsn = filepath.Join(t.TempDir(), "hlbridge.db")
		}
		store, err := queue.OpenStore(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		qc := *st.queue
		qc.Logger = logger
		qc.Metrics = st.metrics
		q, err := queue.New(store, syncer, qc)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			q.Stop(ctx)
			store.Close()
		})
		b.queue = q
		deps.Dispatcher, deps.Events = q, q
		st.server.AdminToken = b.admin
	}
	srv, err := httpapi.NewServer(st.server, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	b.url = hs.URL
	t.Cleanup(func() {
		logs := b.logs.String()
		for name, secret := range map[string]string{"access key": b.key, "application password": wps.AppPassword, "admin token": b.admin} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s reached the log", name)
			}
		}
		if b.hl != nil && strings.Contains(logs, b.hl.Token) {
			t.Errorf("the HighLevel token reached the log")
		}
	})
	return b
}

// contact seeds a new contact with a unique email in the fake HighLevel.
func (b *bundle) contact(t *testing.T, mutate ...func(*highlevel.Contact)) highlevel.Contact {
	t.Helper()
	c := highlevel.Contact{ID: testkit.RandomID(20), FirstName: "Ada", LastName: "Lovelace",
		Email: wordpresstest.UniqueEmail(t), CompanyName: "Engines Ltd", Tags: []string{"vip", "course two"}}
	for _, m := range mutate {
		m(&c)
	}
	if b.hl != nil {
		return b.hl.PutContact(c)
	}
	return c
}

// reply is the bridge's JSON answer.
type reply struct {
	EventID int64         `json:"event_id"`
	Status  string        `json:"status"`
	Error   string        `json:"error"`
	Result  bridge.Result `json:"result"`
}

// call sends a webhook: method, a path with query, and an optional JSON body.
func (b *bundle) call(t *testing.T, method, pathAndQuery string, body any) (int, reply) {
	t.Helper()
	var rd io.Reader
	if raw, ok := body.(json.RawMessage); ok {
		rd = bytes.NewReader(raw) // sent as it is, broken or not
	} else if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.url+pathAndQuery, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %s", method, pathAndQuery, raw)
	}
	return resp.StatusCode, r
}

// wpf sends WP Fusion's URL for action with the extra query parameters.
func (b *bundle) wpf(t *testing.T, action, contactID string, extra ...string) (int, reply) {
	t.Helper()
	q := url.Values{"wpf_action": {action}, "access_key": {b.key}}
	if contactID != "" {
		q.Set("contact_id", contactID)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return b.call(t, http.MethodPost, "/?"+q.Encode(), nil)
}

// user returns the one WordPress user with this email, failing otherwise.
func (b *bundle) user(t *testing.T, email string) *wordpress.User {
	t.Helper()
	u, err := b.wp.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	return u
}

func (b *bundle) meta(t *testing.T, id int64, keys ...string) map[string]wordpress.MetaValue {
	t.Helper()
	m, err := b.wp.Meta(context.Background(), id, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAddCreatesUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "role", "customer")
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("add: %d %+v", status, r)
	}
	u := b.user(t, c.Email)
	if u.ID != r.Result.UserID || u.Username != wordpress.SanitizeLogin(c.Email) || u.FirstName != "Ada" || u.LastName != "Lovelace" ||
		len(u.Roles) != 1 || u.Roles[0] != "customer" {
		t.Errorf("user = %+v", u)
	}
	m := b.meta(t, u.ID, "highlevel_contact_id", "highlevel_tags", "company")
	if m["highlevel_contact_id"] != c.ID || m["company"] != "Engines Ltd" {
		t.Errorf("meta = %v", m)
	}
	if tags, _ := m["highlevel_tags"].([]string); strings.Join(tags, "|") != "vip|course two" {
		t.Errorf("tags meta = %#v", m["highlevel_tags"])
	}
	if raw := site.UserMetaRaw(t, u.ID, "highlevel_tags"); !strings.HasPrefix(raw, "a:2:{") {
		t.Errorf("tags are not stored as WP Fusion stores them: %q", raw)
	}
}

func TestAddAgainUpdatesWithoutDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	if status, r := b.wpf(t, "add", c.ID); status != http.StatusOK {
		t.Fatalf("first add: %d %+v", status, r)
	}
	first := b.user(t, c.Email)
	c.FirstName, c.Tags = "Augusta", []string{"alumni"}
	b.hl.PutContact(c)
	status, r := b.wpf(t, "add", c.ID)
	if status != http.StatusOK || r.Result.Created || r.Result.UserID != first.ID {
		t.Fatalf("second add: %d %+v (first user %d)", status, r, first.ID)
	}
	u := b.user(t, c.Email)
	if u.ID != first.ID || u.FirstName != "Augusta" {
		t.Errorf("user after second add = %+v", u)
	}
	if tags := b.meta(t, u.ID, "highlevel_tags")["highlevel_tags"].([]string); strings.Join(tags, "|") != "alumni" {
		t.Errorf("tags = %v", tags)
	}
	if ids, _ := b.wp.UsersByMeta(context.Background(), "highlevel_contact_id", c.ID); len(ids) != 1 {
		t.Errorf("users linked to the contact: %v", ids)
	}
}

func TestConcurrentAddsMakeOneUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = b.wpf(t, "add", c.ID)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("add %d answered %d", i, s)
		}
	}
	ids, err := b.wp.UsersByMeta(context.Background(), "highlevel_contact_id", c.ID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("users linked to the contact: %v, %v", ids, err)
	}
	b.user(t, c.Email) // exactly one by email too (UserByEmail would find the first of several)
	if n := countUsersWithEmailPrefix(t, b, c.Email); n != 1 {
		t.Errorf("%d users have the contact's email", n)
	}
}

func countUsersWithEmailPrefix(t *testing.T, b *bundle, email string) int {
	t.Helper()
	out := site.Eval(t, fmt.Sprintf(`echo count(get_users(array('search' => %q, 'search_columns' => array('user_email'), 'fields' => 'ID')));`, email))
	var n int
	fmt.Sscan(strings.TrimSpace(out), &n)
	return n
}

func TestUpdateAfterEmailChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	if status, r := b.wpf(t, "add", c.ID); status != http.StatusOK {
		t.Fatalf("add: %d %+v", status, r)
	}
	before := b.user(t, c.Email)
	oldEmail := c.Email
	c.Email = wordpresstest.UniqueEmail(t)
	c.LastName = "King"
	b.hl.PutContact(c)
	status, r := b.wpf(t, "update", c.ID)
	if status != http.StatusOK || r.Result.UserID != before.ID {
		t.Fatalf("update: %d %+v", status, r)
	}
	u := b.user(t, c.Email)
	if u.ID != before.ID || u.LastName != "King" {
		t.Errorf("user = %+v, want user %d with the new email", u, before.ID)
	}
	if _, err := b.wp.UserByEmail(context.Background(), oldEmail); err == nil {
		t.Errorf("the old email still finds a user")
	}
}

func TestUpdateTagsOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	if status, r := b.wpf(t, "add", c.ID); status != http.StatusOK {
		t.Fatalf("add: %d %+v", status, r)
	}
	c.FirstName, c.CompanyName, c.Tags = "Changed", "Changed Co", []string{"vip", "course three"}
	b.hl.PutContact(c)
	status, r := b.wpf(t, "update_tags", c.ID)
	if status != http.StatusOK {
		t.Fatalf("update_tags: %d %+v", status, r)
	}
	u := b.user(t, c.Email)
	m := b.meta(t, u.ID, "highlevel_tags", "company")
	if tags := m["highlevel_tags"].([]string); strings.Join(tags, "|") != "vip|course three" {
		t.Errorf("tags = %v", tags)
	}
	if u.FirstName != "Ada" || m["company"] != "Engines Ltd" {
		t.Errorf("update_tags changed more than tags: first name %q, company %v", u.FirstName, m["company"])
	}
}

func TestUpdateWithoutUserIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	status, r := b.wpf(t, "update", c.ID)
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "no WordPress user") {
		t.Fatalf("update of a contact without user: %d %+v", status, r)
	}
	if _, err := b.wp.UserByEmail(context.Background(), c.Email); err == nil {
		t.Error("update created a user")
	}
	status, r = b.wpf(t, "add", "unknownContactId123")
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "no contact") {
		t.Fatalf("add of an unknown contact: %d %+v", status, r)
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		role   string
		status int
		want   string // the role the user gets, "" when refused
	}{
		{"", http.StatusOK, "subscriber"},
		{"customer", http.StatusOK, "customer"},
		{"editor", http.StatusUnprocessableEntity, ""},
		{"administrator", http.StatusUnprocessableEntity, ""},
	}
	for _, tc := range cases {
		t.Run("role="+tc.role, func(t *testing.T) {
			c := b.contact(t)
			status, r := b.wpf(t, "add", c.ID, "role", tc.role)
			if status != tc.status {
				t.Fatalf("add role=%s: %d %+v", tc.role, status, r)
			}
			if tc.want == "" {
				if !strings.Contains(r.Error, tc.role) {
					t.Errorf("refusal does not name the role: %q", r.Error)
				}
				if _, err := b.wp.UserByEmail(context.Background(), c.Email); err == nil {
					t.Errorf("a refused add created a user")
				}
				return
			}
			if u := b.user(t, c.Email); len(u.Roles) != 1 || u.Roles[0] != tc.want {
				t.Errorf("roles = %v, want [%s]", u.Roles, tc.want)
			}
		})
	}
}

func TestAdministratorIsNeverTouched(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := *b.me
	adminMeta := b.meta(t, before.ID, "highlevel_tags", "highlevel_contact_id")
	c := b.contact(t, func(c *highlevel.Contact) { c.Email = before.Email; c.FirstName = "Mallory" })
	for _, action := range []string{"add", "update", "update_tags"} {
		status, r := b.wpf(t, action, c.ID, "role", "customer")
		if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "administrator") {
			t.Errorf("%s with the admin's email: %d %+v", action, status, r)
		}
	}
	after, err := b.wp.UserByID(context.Background(), before.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.FirstName != before.FirstName || after.Email != before.Email || !after.HasRole("administrator") {
		t.Errorf("administrator changed: %+v", after)
	}
	if m := b.meta(t, before.ID, "highlevel_tags", "highlevel_contact_id"); fmt.Sprint(m) != fmt.Sprint(adminMeta) {
		t.Errorf("administrator meta changed: %v -> %v", adminMeta, m)
	}
}

func TestSendNotification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "send_notification", "true")
	if status != http.StatusOK || !r.Result.Notified {
		t.Fatalf("add with send_notification: %d %+v", status, r)
	}
	m := site.WaitMail(t, c.Email, 10*time.Second)
	if !strings.Contains(m.Subject, "Login Details") {
		t.Errorf("subject = %q", m.Subject)
	}
	// An add for an existing user sends nothing new; send_notification=false never does.
	other := b.contact(t)
	if status, _ := b.wpf(t, "add", other.ID, "send_notification", "false"); status != http.StatusOK {
		t.Fatal(status)
	}
	if status, r := b.wpf(t, "add", c.ID, "send_notification", "true"); status != http.StatusOK || r.Result.Notified {
		t.Fatalf("second add: %d %+v", status, r)
	}
	time.Sleep(300 * time.Millisecond)
	for _, mail := range site.Mails(t) {
		if strings.Contains(strings.Join(mail.To, ","), other.Email) {
			t.Errorf("send_notification=false sent %q", mail.Subject)
		}
	}
}

func TestReturnPassword(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *bridge.Config) { c.ReturnPasswordField = "wp_password" }))
	field := b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID)
	if status != http.StatusOK || !r.Result.PasswordReturned {
		t.Fatalf("add: %d %+v", status, r)
	}
	stored, _ := b.hl.Contact(c.ID)
	password, _ := stored.Custom(field.ID)
	if len(password) < 16 {
		t.Fatalf("HighLevel received %d characters of password", len(password))
	}
	if !site.LoginWorks(t, c.Email, password) {
		t.Errorf("the returned password does not log in to wp-login.php")
	}
	if strings.Contains(b.logs.String(), password) {
		t.Errorf("the generated password reached the log")
	}
	// A second add updates and returns nothing new.
	writes := len(b.hl.Writes())
	if status, r := b.wpf(t, "add", c.ID); status != http.StatusOK || r.Result.PasswordReturned {
		t.Fatalf("second add: %d %+v", status, r)
	}
	if len(b.hl.Writes()) != writes {
		t.Errorf("a second add wrote to HighLevel again")
	}
}

func TestPayloadMode(t *testing.T) {
	t.Parallel()
	b := setup(t, payloadMode)
	email := wordpresstest.UniqueEmail(t)
	id := testkit.RandomID(20)
	body := map[string]any{
		"contact_id": id, "first_name": "Mary", "last_name": "Jackson", "email": email,
		"tags": "vip, course two", "company_name": "NASA",
		"location": map[string]any{"id": "loc1"}, "workflow": map[string]any{"id": "wf1"},
	}
	status, r := b.call(t, http.MethodPost, "/?wpf_action=add&access_key="+b.key, body)
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("payload add: %d %+v", status, r)
	}
	u := b.user(t, email)
	m := b.meta(t, u.ID, "highlevel_contact_id", "highlevel_tags", "company")
	if u.FirstName != "Mary" || m["highlevel_contact_id"] != id || m["company"] != "NASA" ||
		strings.Join(m["highlevel_tags"].([]string), "|") != "vip|course two" {
		t.Errorf("user %+v meta %v", u, m)
	}
	// Payload mode with no contact in the body is refused clearly.
	status, r = b.wpf(t, "add", id)
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "body") {
		t.Errorf("payload mode without body: %d %+v", status, r)
	}
}

func TestContactIDFromBody(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	// HighLevel's workflow webhook body, and a URL without contact_id.
	status, r := b.call(t, http.MethodPost, "/hooks/highlevel/add",
		map[string]any{"contact_id": c.ID, "email": c.Email, "tags": "ignored"})
	if status != http.StatusUnauthorized {
		t.Fatalf("no key header: %d %+v", status, r)
	}
	req, _ := http.NewRequest(http.MethodPost, b.url+"/hooks/highlevel/add", strings.NewReader(`{"contact_id":"`+c.ID+`","first_name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Access-Key", b.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add with the contact id in the body: %d", resp.StatusCode)
	}
	b.user(t, c.Email)
	status, r = b.call(t, http.MethodPost, "/?wpf_action=add&access_key="+b.key, map[string]any{"contact_id": c.ID})
	if status != http.StatusOK || r.Result.Created {
		t.Fatalf("WP Fusion URL with the contact id in the body: %d %+v", status, r)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	k := "&access_key=" + b.key
	cases := []struct {
		name, method, path string
		body               any
		status             int
		mention            string
	}{
		{"wrong key", "POST", "/?wpf_action=add&access_key=wrong&contact_id=" + c.ID, nil, 401, "access_key"},
		{"no key", "GET", "/?wpf_action=add&contact_id=" + c.ID, nil, 401, "access_key"},
		{"no action", "GET", "/?contact_id=" + c.ID + k, nil, 400, "wpf_action"},
		{"unknown action", "GET", "/?wpf_action=delete&contact_id=" + c.ID + k, nil, 400, "wpf_action"},
		{"no contact id", "POST", "/?wpf_action=add" + k, nil, 400, "contact_id"},
		{"odd contact id", "POST", "/?wpf_action=add&contact_id=../../etc" + k, nil, 400, "contact_id"},
		{"bad flag", "POST", "/?wpf_action=add&send_notification=maybe&contact_id=" + c.ID + k, nil, 400, "send_notification"},
		{"broken JSON", "POST", "/?wpf_action=add&contact_id=" + c.ID + k, json.RawMessage(`{"contact_id":`), 400, "body"},
		{"unknown path", "GET", "/nope", nil, 404, "endpoint"},
		{"wrong method", "DELETE", "/?wpf_action=add" + k, nil, 405, "method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, r := b.call(t, tc.method, tc.path, tc.body)
			if status != tc.status || !strings.Contains(r.Error, tc.mention) {
				t.Errorf("%s %s: %d %q, want %d mentioning %q", tc.method, tc.path, status, r.Error, tc.status, tc.mention)
			}
		})
	}
	if _, err := b.wp.UserByEmail(context.Background(), c.Email); err == nil {
		t.Error("a refused request created a user")
	}
	if status, r := b.wpf(t, "test", ""); status != http.StatusOK || r.Status != "ok" {
		t.Errorf("test action: %d %+v", status, r)
	}
	if n := len(b.hl.Requests()); n != 0 {
		t.Errorf("refused requests and the test action called HighLevel %d times", n)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *bridge.Config) { c.ReturnPasswordField = "wp_password" }))
	field := b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
	c := b.contact(t)
	for _, action := range []string{"add", "update", "update_tags", "test"} {
		if status, r := b.wpf(t, action, c.ID, "send_notification", "true"); status != http.StatusOK {
			t.Fatalf("%s: %d %+v", action, status, r)
		}
	}
	b.wpf(t, "add", c.ID, "role", "administrator")
	b.call(t, "GET", "/?wpf_action=add&access_key=wrong-"+b.key+"&contact_id="+c.ID, nil)
	stored, _ := b.hl.Contact(c.ID)
	password, _ := stored.Custom(field.ID)
	logs := b.logs.String()
	for name, secret := range map[string]string{"access key": b.key, "application password": site.AppPassword,
		"HighLevel token": b.hl.Token, "generated password": password} {
		if secret == "" {
			t.Fatalf("%s is empty: the test proves nothing", name)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	if !strings.Contains(logs, "access_key=REDACTED") {
		t.Errorf("request lines do not show the redacted key; log:\n%s", logs)
	}
}

// A user linked to one contact is not taken over by another contact that
// carries the same email.
func TestLinkedUserNotTakenOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.contact(t)
	if status, r := b.wpf(t, "add", first.ID); status != http.StatusOK {
		t.Fatalf("add: %d %+v", status, r)
	}
	before := b.user(t, first.Email)
	second := b.contact(t, func(c *highlevel.Contact) { c.Email = first.Email; c.FirstName = "Intruder" })
	status, r := b.wpf(t, "add", second.ID)
	if status != http.StatusUnprocessableEntity || !strings.Contains(r.Error, "linked to contact "+first.ID) {
		t.Fatalf("add of a second contact with the same email: %d %+v", status, r)
	}
	after := b.user(t, first.Email)
	if after.FirstName != before.FirstName || b.meta(t, after.ID, "highlevel_contact_id")["highlevel_contact_id"] != first.ID {
		t.Errorf("the user changed hands: %+v", after)
	}
}

// A login that belongs to somebody else gets a number appended, as WP
// Fusion does, and the contact still gets its own user.
func TestTakenLoginGetsANumber(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.contact(t)
	login := wordpress.SanitizeLogin(c.Email)
	other := "other-" + strings.ToLower(testkit.RandomID(10)) + "@example.test"
	if _, err := b.wp.CreateUser(context.Background(), wordpress.NewUser{Username: login, Email: other, Password: "pw-" + testkit.RandomID(12)}); err != nil {
		t.Fatal(err)
	}
	status, r := b.wpf(t, "add", c.ID)
	if status != http.StatusOK || !r.Result.Created {
		t.Fatalf("add: %d %+v", status, r)
	}
	u := b.user(t, c.Email)
	suffix, ok := strings.CutPrefix(u.Username, login+"-")
	if !ok || len(suffix) != 4 {
		t.Errorf("login = %q, want %q with a number appended", u.Username, login)
	}
	if o := b.user(t, other); o.Username != login {
		t.Errorf("the other user's login changed: %+v", o)
	}
}
