package wordpress_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/wordpress"
)

// These cases are about what sits between the client and WordPress (a
// proxy answering 429, a dead or slow host, a redirect, a site that is not
// WordPress), so a small httptest server stands in for it; everything
// WordPress itself does is tested against the real site.

func clientFor(t *testing.T, url string, timeout time.Duration) *wordpress.Client {
	t.Helper()
	c, err := wordpress.New(wordpress.Config{URL: url, Username: "admin", AppPassword: "not-used-here", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	rateLimited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"code":"too_many","message":"slow down","data":{"status":429}}`))
	}))
	t.Cleanup(rateLimited.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	}))
	t.Cleanup(slow.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>Bad gateway</html>", http.StatusBadGateway)
	}))
	t.Cleanup(down.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example.test/wp-json/", http.StatusMovedPermanently)
	}))
	t.Cleanup(redirect.Close)
	notWP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>a shop</html>"))
	}))
	t.Cleanup(notWP.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	cases := []struct {
		name      string
		url       string
		retryable bool
		wait      time.Duration
		want      error
		mention   string
	}{
		{"429 with Retry-After", rateLimited.URL, true, 7 * time.Second, nil, "429"},
		{"time-out", slow.URL, true, 0, nil, ""},
		{"connection refused", refused, true, 0, nil, "refused"},
		{"502 from a proxy", down.URL, true, 0, nil, "502"},
		{"redirect", redirect.URL, false, 0, nil, "elsewhere.example.test"},
		{"not WordPress", notWP.URL, false, 0, wordpress.ErrNotWordPress, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := clientFor(t, tc.url, 500*time.Millisecond).UserByID(t.Context(), 1)
			if err == nil {
				t.Fatal("no error")
			}
			if got := wordpress.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tc.retryable)
			}
			if d, _ := wordpress.RetryAfter(err); d != tc.wait {
				t.Errorf("RetryAfter = %v, want %v", d, tc.wait)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q, want it to mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "not-used-here") {
				t.Errorf("error carries the password: %v", err)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []wordpress.Config{
		{URL: "", Username: "a", AppPassword: "b"},
		{URL: "example.com", Username: "a", AppPassword: "b"},
		{URL: "ftp://example.com", Username: "a", AppPassword: "b"},
		{URL: "https://admin:pw@example.com", Username: "a", AppPassword: "b"},
		{URL: "https://example.com?x=1", Username: "a", AppPassword: "b"},
		{URL: "https://example.com", Username: "", AppPassword: "b"},
		{URL: "https://example.com", Username: "a", AppPassword: ""},
	} {
		if _, err := wordpress.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("error repeats the credentials: %v", err)
		}
	}
}

// A site whose companion plugin is older than MinCompanionVersion is
// refused at start-up with a message that says to update the plugin.
func TestVerifyRefusesOldCompanion(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		route := r.URL.Query().Get("rest_route")
		if route == "" {
			route = strings.TrimPrefix(r.URL.Path, "/wp-json")
		}
		switch route {
		case "/wp/v2/users/me":
			w.Write([]byte(`{"id":1,"username":"admin","roles":["administrator"],"capabilities":{"list_users":true,"create_users":true,"edit_users":true,"promote_users":true}}`))
		case "/hlbridge/v1/status":
			w.Write([]byte(`{"plugin":"hlbridge-companion","version":"1.1.0","wordpress":"6.1.9"}`))
		default:
			w.Write([]byte(`{"namespaces":["wp/v2","hlbridge/v1"],"routes":{}}`))
		}
	}))
	t.Cleanup(srv.Close)
	_, err := clientFor(t, srv.URL, 5*time.Second).Verify(t.Context())
	if !errors.Is(err, wordpress.ErrCompanionMissing) || !strings.Contains(err.Error(), "version 1.1.0") ||
		!strings.Contains(err.Error(), "needs "+wordpress.MinCompanionVersion) || !strings.Contains(err.Error(), "update the plugin") {
		t.Errorf("Verify = %v, want a refusal that says to update the plugin", err)
	}
}
