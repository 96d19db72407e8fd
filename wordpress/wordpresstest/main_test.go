package wordpresstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// site is the test WordPress every test here talks to.
var site *Site

func TestMain(m *testing.M) { Main(m, &site) }

// client calls a site's REST API the way hlbridge does: HTTP Basic auth with an
// application password (none when user is empty).
type client struct {
	base, user, password string
	// plainRoutes uses ?rest_route=/... instead of /wp-json/... (permalinks off).
	plainRoutes bool
}

func adminClient(s *Site) client {
	return client{base: s.URL, user: s.Username, password: s.AppPassword}
}

// reply is an HTTP answer.
type reply struct {
	status      int
	contentType string
	body        []byte
}

// code is the WordPress error code in the body, if any.
func (r reply) code() string {
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Code
}

// decode unmarshals the body into v, failing t when it is not JSON.
func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body is not the expected JSON (%v): %s", err, shorten(string(r.body), 500))
	}
}

// want fails t unless the reply has that status and (when code != "") error code.
func (r reply) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %d %q, want %d %q; body: %s", r.status, r.code(), status, code, shorten(string(r.body), 500))
	}
}

// do sends a request to route (e.g. "/hlbridge/v1/status"); body, when not nil, goes as JSON.
func (c client) do(t *testing.T, method, route string, query url.Values, body any) reply {
	t.Helper()
	u := c.base + "/wp-json" + route
	if c.plainRoutes {
		if query == nil {
			query = url.Values{}
		}
		query.Set("rest_route", route)
		u = c.base + "/"
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, route, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, route, err)
	}
	return reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: data}
}

// newUser creates a customer through WordPress's own REST API and returns its id and
// (unique) email.
func newUser(t *testing.T, s *Site) (int64, string) {
	t.Helper()
	email := UniqueEmail(t)
	r := adminClient(s).do(t, http.MethodPost, "/wp/v2/users", nil, map[string]any{
		"username": strings.ReplaceAll(strings.TrimSuffix(email, "@example.test"), "+", "_"),
		"email":    email,
		"password": "Aa1!" + strings.Repeat("x", 20),
		"roles":    []string{"customer"},
	})
	r.want(t, http.StatusCreated, "")
	var u struct {
		ID int64 `json:"id"`
	}
	r.decode(t, &u)
	return u.ID, email
}
