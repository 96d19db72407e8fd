package highlevel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hlbridge/hlbridge/highlevel"
)

// TestErrorsFromTheFake produces each typed error the way HighLevel would.
func TestErrorsFromTheFake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		prepare     func(b *testBundle)
		config      func(*highlevel.Config)
		calls       int // Contact calls; the last one's error is checked
		wantIs      error
		wantStatus  int // of *APIError, 0 when none expected
		wantMessage string
		wantWait    time.Duration // of *RateLimitError, 0 when none expected
		retryable   bool
	}{
		{
			name:        "wrong token",
			config:      func(c *highlevel.Config) { c.Token = "pit-wrong" },
			calls:       1,
			wantIs:      highlevel.ErrUnauthorized,
			wantStatus:  401,
			wantMessage: "Invalid token: access token is invalid",
		},
		{
			name:        "unknown contact: 404 by default",
			calls:       1,
			wantIs:      highlevel.ErrNotFound,
			wantStatus:  404,
			wantMessage: "Contact not found",
		},
		{
			name:        "unknown contact: 400 with a string message",
			prepare:     func(b *testBundle) { b.srv.SetUnknownContact(400, "Contact not found") },
			calls:       1,
			wantIs:      highlevel.ErrNotFound,
			wantStatus:  400,
			wantMessage: "Contact not found",
		},
		{
			name: "unknown contact: 422 with an array message",
			prepare: func(b *testBundle) {
				b.srv.SetUnknownContact(422, []string{"Contact not found", "contactId is invalid"})
			},
			calls:       1,
			wantIs:      highlevel.ErrNotFound,
			wantStatus:  422,
			wantMessage: "Contact not found; contactId is invalid",
		},
		{
			name:        "500 from a failing gateway",
			prepare:     func(b *testBundle) { b.srv.FailNext(1, 500) },
			calls:       1,
			wantStatus:  500,
			wantMessage: "Internal Server Error",
			retryable:   true,
		},
		{
			name:        "503",
			prepare:     func(b *testBundle) { b.srv.FailNext(1, 503) },
			calls:       1,
			wantStatus:  503,
			wantMessage: "Service Unavailable",
			retryable:   true,
		},
		{
			name:      "burst exceeded: wait is the interval header",
			prepare:   func(b *testBundle) { b.srv.SetBurst(2, 30*time.Second) },
			calls:     3,
			wantWait:  30 * time.Second,
			retryable: true,
		},
		{
			name: "burst exceeded with Retry-After",
			prepare: func(b *testBundle) {
				b.srv.SetBurst(1, time.Minute)
				b.srv.SetRetryAfter(7 * time.Second)
			},
			calls:     2,
			wantWait:  7 * time.Second,
			retryable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mutate []func(*highlevel.Config)
			if tt.config != nil {
				mutate = append(mutate, tt.config)
			}
			b := setup(t, mutate...)
			b.srv.PutContact(highlevel.Contact{ID: "known"})
			if tt.prepare != nil {
				tt.prepare(b)
			}
			id := "known"
			if tt.wantIs == highlevel.ErrNotFound {
				id = "unknown"
			}
			var err error
			for range tt.calls {
				_, err = b.client.Contact(context.Background(), id)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			var api *highlevel.APIError
			if gotAPI := errors.As(err, &api); gotAPI != (tt.wantStatus != 0) {
				t.Errorf("errors.As(*APIError) = %v for %v", gotAPI, err)
			} else if gotAPI && (api.Status != tt.wantStatus || api.Message != tt.wantMessage) {
				t.Errorf("APIError = {%d %q}, want {%d %q}", api.Status, api.Message, tt.wantStatus, tt.wantMessage)
			}
			var rl *highlevel.RateLimitError
			if gotRL := errors.As(err, &rl); gotRL != (tt.wantWait != 0) {
				t.Errorf("errors.As(*RateLimitError) = %v for %v", gotRL, err)
			} else if gotRL {
				if rl.Wait != tt.wantWait {
					t.Errorf("Wait = %s, want %s", rl.Wait, tt.wantWait)
				}
				if wait, ok := highlevel.RetryAfter(err); !ok || wait != tt.wantWait {
					t.Errorf("RetryAfter = %s, %v; want %s", wait, ok, tt.wantWait)
				}
				if got := b.client.RateLimit().Remaining; got != 0 {
					t.Errorf("RateLimit().Remaining after a 429 = %d, want 0", got)
				}
			}
			if got := highlevel.Retryable(err); got != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.retryable)
			}
			if strings.Contains(err.Error(), b.srv.Token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

// TestErrorClassification feeds the client canned answers HighLevel gives.
func TestErrorClassification(t *testing.T) {
	t.Parallel()
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantIs      error
		wantMessage string // of *APIError
		wantWait    time.Duration
		wantHint    bool // RetryAfter ok
		retryable   bool
	}{
		{name: "missing version header", status: 401, body: `{"statusCode":401,"message":"version header was not found."}`,
			wantIs: highlevel.ErrUnauthorized, wantMessage: "version header was not found."},
		{name: "404", status: 404, body: `{"statusCode":404,"message":"Contact not found","error":"Not Found"}`,
			wantIs: highlevel.ErrNotFound, wantMessage: "Contact not found"},
		{name: "400 contact not found", status: 400, body: `{"statusCode":400,"message":"Contact not found"}`,
			wantIs: highlevel.ErrNotFound, wantMessage: "Contact not found"},
		{name: "422 array about the contact", status: 422, body: `{"statusCode":422,"message":["contact does not exist"]}`,
			wantIs: highlevel.ErrNotFound, wantMessage: "contact does not exist"},
		{name: "400 about something else", status: 400, body: `{"statusCode":400,"message":["email must be an email"],"error":"Bad Request"}`,
			wantMessage: "email must be an email"},
		{name: "422 about a field", status: 422, body: `{"statusCode":422,"message":["property foo should not exist"]}`,
			wantMessage: "property foo should not exist"},
		{name: "403 location", status: 403, body: `{"statusCode":403,"message":"The token does not have access to this location."}`,
			wantIs: highlevel.ErrForbidden, wantMessage: "The token does not have access to this location."},
		{name: "408 is retryable", status: 408, body: `{}`, retryable: true},
		{name: "502 html", status: 502, body: "<html>Bad Gateway</html>", wantMessage: "<html>Bad Gateway</html>", retryable: true},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "3"}, body: `{"message":"down"}`,
			wantMessage: "down", wantWait: 3 * time.Second, wantHint: true, retryable: true},
		{name: "429 Retry-After seconds beats interval", status: 429,
			header:   map[string]string{"Retry-After": "5", "X-RateLimit-Interval-Milliseconds": "10000"},
			wantWait: 5 * time.Second, wantHint: true, retryable: true},
		{name: "429 Retry-After date", status: 429, header: map[string]string{"Retry-After": httpDate},
			wantWait: 90 * time.Second, wantHint: true, retryable: true},
		{name: "429 interval", status: 429, header: map[string]string{"X-RateLimit-Interval-Milliseconds": "2500", "X-RateLimit-Remaining": "0"},
			wantWait: 2500 * time.Millisecond, wantHint: true, retryable: true},
		{name: "429 bare", status: 429, body: `{"message":"Too many requests"}`,
			wantWait: 10 * time.Second, wantHint: true, retryable: true},
		{name: "429 garbage Retry-After falls back", status: 429, header: map[string]string{"Retry-After": "soon"},
			wantWait: 10 * time.Second, wantHint: true, retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stubClient(t, "pit-classify", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := c.Contact(context.Background(), "c1")
			if err == nil {
				t.Fatal("no error")
			}
			for _, sentinel := range []error{highlevel.ErrNotFound, highlevel.ErrUnauthorized, highlevel.ErrForbidden} {
				if got, want := errors.Is(err, sentinel), sentinel == tt.wantIs; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, sentinel, got, want)
				}
			}
			var api *highlevel.APIError
			if tt.status != 429 {
				if !errors.As(err, &api) || api.Status != tt.status || api.Message != tt.wantMessage {
					t.Errorf("APIError = %+v, want {%d %q}", api, tt.status, tt.wantMessage)
				}
			}
			wait, ok := highlevel.RetryAfter(err)
			if ok != tt.wantHint {
				t.Errorf("RetryAfter ok = %v, want %v", ok, tt.wantHint)
			}
			// An HTTP date is only accurate to the second, and the clock
			// moves on between writing it and reading it.
			if diff := wait - tt.wantWait; diff < -5*time.Second || diff > time.Second {
				t.Errorf("RetryAfter = %s, want %s", wait, tt.wantWait)
			}
			if got := highlevel.Retryable(err); got != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.retryable)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"unknown field", fmt.Errorf("x: %w", highlevel.ErrUnknownCustomField), false},
		{"invalid payload", highlevel.ErrInvalidPayload, false},
		{"not found", highlevel.ErrNotFound, false},
		{"rate limit", fmt.Errorf("x: %w", &highlevel.RateLimitError{Wait: time.Second}), true},
		{"500", &highlevel.APIError{Status: 500}, true},
		{"504", fmt.Errorf("x: %w", &highlevel.APIError{Status: 504}), true},
		{"409", &highlevel.APIError{Status: 409}, false},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", context.Canceled, true},
		{"url error", &url.Error{Op: "Get", URL: "http://x", Err: errors.New("tls: bad record")}, true},
		{"dial error", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
	}
	for _, tt := range tests {
		if got := highlevel.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, ok := highlevel.RetryAfter(&highlevel.APIError{Status: 500}); ok {
		t.Error("RetryAfter of a 500 without a header: ok")
	}
}

// TestErrorsNeverContainTheToken makes HighLevel (or a proxy) echo the
// Authorization header back in every place an error's text comes from.
func TestErrorsNeverContainTheToken(t *testing.T) {
	t.Parallel()
	const token = "pit-6f1c0ffee-secret-token"
	for _, status := range []int{400, 401, 404, 422, 429, 500, 502} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			c := stubClient(t, token, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				if status == 502 { // non-JSON body
					_, _ = io.WriteString(w, "proxy saw "+r.Header.Get("Authorization"))
					return
				}
				_, _ = fmt.Fprintf(w, `{"statusCode":%d,"message":["contact not found for %s"]}`, status, r.Header.Get("Authorization"))
			})
			_, err := c.Contact(context.Background(), "c1")
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error text contains the token: %q", err)
			}
			var api *highlevel.APIError
			if errors.As(err, &api) && strings.Contains(api.Message, token) {
				t.Errorf("APIError.Message contains the token: %q", api.Message)
			}
			var rl *highlevel.RateLimitError
			if errors.As(err, &rl) && strings.Contains(rl.Message, token) {
				t.Errorf("RateLimitError.Message contains the token: %q", rl.Message)
			}
		})
	}
}

func TestLongErrorBodyIsTruncated(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("é", 1000) // 2 bytes each: the cut must not split one
	c := stubClient(t, "pit-long", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = io.WriteString(w, body)
	})
	_, err := c.Contact(context.Background(), "c1")
	var api *highlevel.APIError
	if !errors.As(err, &api) {
		t.Fatalf("error %v", err)
	}
	if len(api.Message) > 310 || !strings.HasSuffix(api.Message, "…") || !utf8.ValidString(api.Message) {
		t.Errorf("message of %d bytes, valid UTF-8 %v: %q", len(api.Message), utf8.ValidString(api.Message), api.Message)
	}
}
