package highlevel_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// testBundle is what most tests need: a fake HighLevel, a client pointed at
// it, and the client's clock.
type testBundle struct {
	srv    *highleveltest.Server
	client *highlevel.Client
	clock  *fakeClock
	logs   *testkit.LogBuffer
}

// setup starts a fake and a client for it; mutate tweaks the config.
func setup(t *testing.T, mutate ...func(*highlevel.Config)) *testBundle {
	t.Helper()
	srv := highleveltest.New(t)
	logs := &testkit.LogBuffer{}
	cfg := srv.Config()
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, m := range mutate {
		m(&cfg)
	}
	client, err := highlevel.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &fakeClock{now: time.Date(2026, 8, 4, 14, 53, 9, 0, time.UTC)}
	highlevel.SetNow(client, clock.Now)
	return &testBundle{srv: srv, client: client, clock: clock, logs: logs}
}

// stubClient returns a client for a handler standing in for HighLevel.
func stubClient(t *testing.T, token string, h http.HandlerFunc) *highlevel.Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c, err := highlevel.New(highlevel.Config{BaseURL: ts.URL, Token: token, LocationID: "loc1"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	const token = "pit-0123456789abcdef"
	tests := []struct {
		name    string
		cfg     highlevel.Config
		wantErr string // substring; "" means valid
	}{
		{"defaults", highlevel.Config{Token: token}, ""},
		{"everything set", highlevel.Config{BaseURL: "http://127.0.0.1:9/", Token: token, LocationID: "ve9EPM428h8vShlRW1KT", Timeout: time.Second, CatalogueTTL: time.Minute}, ""},
		{"missing token", highlevel.Config{}, "Config.Token is required"},
		{"blank token", highlevel.Config{Token: "  "}, "Config.Token is required"},
		{"token with a space", highlevel.Config{Token: "pit-abc def"}, "whitespace"},
		{"token with a newline", highlevel.Config{Token: "pit-abc\r\nX-Evil: 1"}, "whitespace"},
		{"relative base URL", highlevel.Config{Token: token, BaseURL: "services.leadconnectorhq.com"}, "Config.BaseURL"},
		{"ftp base URL", highlevel.Config{Token: token, BaseURL: "ftp://example.com"}, "Config.BaseURL"},
		{"base URL with credentials", highlevel.Config{Token: token, BaseURL: "https://u:p@example.com"}, "Config.BaseURL"},
		{"negative timeout", highlevel.Config{Token: token, Timeout: -time.Second}, "Config.Timeout"},
		{"negative TTL", highlevel.Config{Token: token, CatalogueTTL: -time.Second}, "Config.CatalogueTTL"},
		{"location id with a slash", highlevel.Config{Token: token, LocationID: "a/b"}, "Config.LocationID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := highlevel.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New: no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.cfg.Token != "" && strings.TrimSpace(tt.cfg.Token) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.cfg.Token)) {
				t.Errorf("New: error %q contains the token", err)
			}
		})
	}
}

func TestEveryRequestCarriesBearerTokenAndVersion(t *testing.T) {
	t.Parallel()
	const token = "pit-headers-check"
	var mu sync.Mutex
	var seen []http.Header
	c := stubClient(t, token, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(r.URL.Path, "/locations/"):
			_, _ = w.Write([]byte(`{"customFields":[{"id":"f1","fieldKey":"contact.a"}]}`))
		case strings.HasSuffix(r.URL.Path, "/tags"):
			_, _ = w.Write([]byte(`{"tags":["a"]}`))
		default:
			_, _ = w.Write([]byte(`{"succeded":true,"contact":{"id":"c1"}}`))
		}
	})
	ctx := context.Background()
	calls := map[string]func() error{
		"Contact":            func() error { _, err := c.Contact(ctx, "c1"); return err },
		"UpdateCustomFields": func() error { return c.UpdateCustomFields(ctx, "c1", []highlevel.FieldWrite{{ID: "f1", Value: "x"}}) },
		"CustomFields":       func() error { _, err := c.CustomFields(ctx); return err },
		"ContactByEmail":     func() error { _, err := c.ContactByEmail(ctx, "a@example.com"); return err },
		"AddTags":            func() error { return c.AddTags(ctx, "c1", []string{"a"}) },
		"RemoveTags":         func() error { return c.RemoveTags(ctx, "c1", []string{"a"}) },
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(seen) != len(calls) {
		t.Fatalf("server saw %d requests, want %d", len(seen), len(calls))
	}
	for i, h := range seen {
		if got, want := h.Get("Authorization"), "Bearer "+token; got != want {
			t.Errorf("request %d: Authorization %q, want %q", i, got, want)
		}
		if got := h.Get("Version"); got != highlevel.APIVersion {
			t.Errorf("request %d: Version %q, want %q", i, got, highlevel.APIVersion)
		}
	}
}

func TestClientDoesNotRetryByItself(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.PutContact(highlevel.Contact{ID: "c1"})
	b.srv.FailNext(1, http.StatusServiceUnavailable)

	_, err := b.client.Contact(context.Background(), "c1")
	if !highlevel.Retryable(err) {
		t.Fatalf("Contact after a 503: %v, want a retryable error", err)
	}
	if n := len(b.srv.Requests()); n != 1 {
		t.Errorf("fake saw %d requests, want exactly 1 (the caller's queue retries, not the client)", n)
	}
	if _, err := b.client.Contact(context.Background(), "c1"); err != nil {
		t.Errorf("second Contact: %v", err)
	}
}

func TestRateLimitStateFollowsHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.PutContact(highlevel.Contact{ID: "c1"})
	if got := b.client.RateLimit(); !got.ObservedAt.IsZero() {
		t.Fatalf("RateLimit before any call: %+v, want zero", got)
	}
	for range 3 {
		if _, err := b.client.Contact(context.Background(), "c1"); err != nil {
			t.Fatal(err)
		}
	}
	got := b.client.RateLimit()
	want := highlevel.RateLimitState{
		Max: 100, Remaining: 97, Interval: 10 * time.Second,
		DailyMax: 200000, DailyRemaining: 199997, ObservedAt: b.clock.Now(),
	}
	if got != want {
		t.Errorf("RateLimit = %+v\nwant        %+v", got, want)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) })
	c, err := highlevel.New(highlevel.Config{BaseURL: ts.URL, Token: "pit-slow", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Contact(context.Background(), "c1")
	if err == nil {
		t.Fatal("Contact against a server that never answers: no error")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Contact took %s, want about the 50ms timeout", elapsed)
	}
	if !highlevel.Retryable(err) {
		t.Errorf("Retryable(%v) = false, want true for a timeout", err)
	}
}

func TestConnectionFailureIsRetryable(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	c, err := highlevel.New(highlevel.Config{BaseURL: url, Token: "pit-closed"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Contact(context.Background(), "c1")
	if err == nil || !highlevel.Retryable(err) {
		t.Errorf("Contact against a closed port: %v, want a retryable error", err)
	}
	var api *highlevel.APIError
	if errors.As(err, &api) {
		t.Errorf("connection failure surfaced as *APIError %v", api)
	}
}

func TestLogsNeverCarryTokenOrFieldValues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.srv.AddCustomField(highlevel.CustomField{Name: "Secret Answer"})
	b.srv.PutContact(highlevel.Contact{
		ID: "c1", Email: "ann.example@example.com", FirstName: "Annabelle",
		CustomFields: []highlevel.CustomFieldValue{{ID: f.ID, Value: "blue-giraffe-42"}},
	})
	ctx := context.Background()
	if _, err := b.client.Contact(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := b.client.UpdateCustomFields(ctx, "c1", []highlevel.FieldWrite{{Key: "secret_answer", Value: "purple-otter-7"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.ContactByEmail(ctx, "ann.example@example.com"); err != nil {
		t.Fatal(err)
	}
	_, _ = b.client.Contact(ctx, "missing")

	logs := b.logs.String()
	if !strings.Contains(logs, "highlevel request") {
		t.Fatalf("expected debug request lines, got %q", logs)
	}
	for _, secret := range []string{b.srv.Token, "ann.example", "Annabelle", "blue-giraffe-42", "purple-otter-7"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

// A write's check (WithWriteCheck) runs once the request budget lets the
// write go, not before it waits: a write whose check turned false while it
// waited is not sent. A read is never checked.
func TestWriteCheckAfterTheBudgetWait(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *highlevel.Config) { c.RequestsPer10s = 10 }) // one request a second, burst 1
	c := b.srv.PutContact(highlevel.Contact{FirstName: "Ada", Email: "ada@example.test"})
	var stop sync.Once
	stopped := make(chan struct{})
	errStop := errors.New("stop")
	ctx := highlevel.WithWriteCheck(context.Background(), func() error {
		select {
		case <-stopped:
			return errStop
		default:
			return nil
		}
	})
	if _, err := b.client.Contact(ctx, c.ID); err != nil { // spends the burst
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- b.client.UpdateCustomFields(ctx, c.ID, []highlevel.FieldWrite{{Key: "wp_password", Value: "x", Secret: true}})
	}()
	// The write waits about a second for the budget; the check fails meanwhile.
	time.Sleep(200 * time.Millisecond)
	stop.Do(func() { close(stopped) })
	if err := <-done; !errors.Is(err, errStop) {
		t.Errorf("the write that waited: err = %v, want the check's error", err)
	}
	if w := b.srv.Writes(); len(w) != 0 {
		t.Errorf("%d writes reached HighLevel after the check failed", len(w))
	}
	if _, err := b.client.Contact(ctx, c.ID); err != nil {
		t.Errorf("a read with a failing check: %v, want it sent", err)
	}
}
