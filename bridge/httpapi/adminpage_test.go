package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
)

// noEvents is an empty event store.
type noEvents struct{}

func (noEvents) Event(context.Context, int64) (*bridge.Event, error) { return nil, bridge.ErrNoEvent }

func (noEvents) Retry(context.Context, int64) error { return bridge.ErrNoEvent }

func (noEvents) RetryFailed(context.Context) ([]int64, error) { return nil, nil }

func (noEvents) Events(context.Context, bridge.EventFilter) ([]bridge.Event, error) { return nil, nil }

func adminServer(t *testing.T, token string) *Server {
	t.Helper()
	syncer, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber",
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id"}, unusedUsers{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{AccessKey: fuzzKey, AdminToken: token, TrustedProxies: []string{"10.0.0.1"}},
		Deps{Syncer: syncer, Dispatcher: &recordingDispatcher{}, Events: noEvents{}})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// A session is good until it expires, and only for the token that made it;
// a tampered one is refused.
func TestAdminSession(t *testing.T) {
	t.Parallel()
	s := adminServer(t, "admin-token-0123456789")
	now := time.Now()
	v := s.newSession(now)
	if strings.Contains(v, "admin-token") {
		t.Fatal("the session holds the token")
	}
	if !s.validSession(v, now) || !s.validSession(v, now.Add(sessionLifetime-time.Minute)) {
		t.Error("a fresh session is refused")
	}
	if s.validSession(v, now.Add(sessionLifetime+time.Second)) {
		t.Error("an expired session is accepted")
	}
	if other := adminServer(t, "another-token-0123456789"); other.validSession(v, now) {
		t.Error("a session survives a change of token")
	}
	for _, bad := range []string{"", ".", v + "0", "9" + v, strings.Replace(v, ".", ".0", 1)} {
		if s.validSession(bad, now) {
			t.Errorf("tampered session %q accepted", bad)
		}
	}
	if s.mac("csrf", v) == s.mac("csrf", s.newSession(now)) {
		t.Error("two sessions share a CSRF token")
	}
}

// The cookie is Secure over TLS and behind a trusted proxy saying https,
// and not when an untrusted client says so.
func TestAdminCookieSecure(t *testing.T) {
	t.Parallel()
	s := adminServer(t, "admin-token-0123456789")
	for _, tc := range []struct {
		name   string
		remote string
		proto  string
		tls    bool
		secure bool
	}{
		{"plain http", "192.0.2.1:1234", "", false, false},
		{"tls", "192.0.2.1:1234", "", true, true},
		{"trusted proxy, https", "10.0.0.1:1234", "https", false, true},
		{"trusted proxy, http", "10.0.0.1:1234", "http", false, false},
		{"untrusted client says https", "192.0.2.1:1234", "https", false, false},
	} {
		req := httptest.NewRequest(http.MethodPost, "/admin/login", strings.NewReader(url.Values{"token": {"admin-token-0123456789"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = tc.remote
		if tc.proto != "" {
			req.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		if !tc.tls {
			req.TLS = nil
		}
		if tc.tls {
			req = httptest.NewRequest(http.MethodPost, "https://bridge.test/admin/login", req.Body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.RemoteAddr = tc.remote
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		cookie := rec.Header().Get("Set-Cookie")
		if rec.Code != http.StatusSeeOther || cookie == "" {
			t.Fatalf("%s: sign-in answered %d, cookie %q", tc.name, rec.Code, cookie)
		}
		if got := strings.Contains(cookie, "; Secure"); got != tc.secure {
			t.Errorf("%s: Secure %v; want %v (%s)", tc.name, got, tc.secure, cookie)
		}
	}
}
