package highlevel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Test for them with errors.Is; API errors carrying them are
// also *APIError values, so errors.As still yields the status and message.
var (
	// ErrNotFound means HighLevel does not know the contact (or other
	// resource): a 404, or a 400/422 whose message says the contact was not
	// found. Permanent.
	ErrNotFound = errors.New("highlevel: not found")

	// ErrUnauthorized means HighLevel refused the credentials: a 401 for a bad
	// or expired token, or for a missing Version header. Permanent until the
	// configuration changes.
	ErrUnauthorized = errors.New("highlevel: unauthorized")

	// ErrForbidden means the token is valid but may not touch this location
	// or lacks a scope (403). Permanent until the configuration changes.
	ErrForbidden = errors.New("highlevel: forbidden")

	// ErrUnknownCustomField means a custom field id or key is not in the
	// location's custom field catalogue, even after refreshing it.
	ErrUnknownCustomField = errors.New("highlevel: unknown custom field")

	// ErrInvalidPayload means a webhook body HighLevel (or someone pretending
	// to be it) posted could not be parsed. The wrapped text says why.
	ErrInvalidPayload = errors.New("highlevel: invalid webhook payload")
)

// defaultRateLimitWait is how long to wait after a 429 that says nothing
// about when to come back: HighLevel's burst window is 10 seconds.
const defaultRateLimitWait = 10 * time.Second

// APIError is a non-2xx answer from HighLevel that is not a rate limit.
// Status is the HTTP status; Message is HighLevel's "message" (an array of
// messages is joined with "; "), or a short excerpt of a non-JSON body.
// When the status maps to a sentinel (ErrNotFound, ErrUnauthorized,
// ErrForbidden) the error unwraps to it.
type APIError struct {
	Status  int
	Message string

	kind       error         // sentinel this status maps to, if any
	retryAfter time.Duration // from a Retry-After header on a 5xx, if any
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// Unwrap returns the sentinel the status maps to, or nil.
func (e *APIError) Unwrap() error { return e.kind }

// RateLimitError is a 429 from HighLevel. Wait is how long to hold off
// before trying again: the Retry-After header when HighLevel sends one
// (undocumented, but honoured), else the X-RateLimit-Interval-Milliseconds
// window, else 10 seconds.
type RateLimitError struct {
	Wait    time.Duration
	Message string
}

// Error implements error.
func (e *RateLimitError) Error() string {
	msg := fmt.Sprintf("rate limited (HTTP 429), retry in %s", e.Wait)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Retryable reports whether trying the same call again later may succeed:
// true for 5xx, 408, 429, timeouts, connection failures and a cancelled
// context (the request did not fail on HighLevel's side, it was abandoned);
// false for other 4xx (ErrNotFound, ErrUnauthorized, ErrForbidden,
// validation errors), ErrUnknownCustomField, ErrInvalidPayload, argument
// errors, an undecodable 2xx answer, and anything else.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return true
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Status >= 500 || api.Status == http.StatusRequestTimeout
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true // timeouts and every other network-level failure
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return true // transport failure: the request may never have arrived
	}
	return errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF)
}

// RetryAfter returns how long HighLevel asked the caller to wait: the Wait
// of a *RateLimitError, or a Retry-After header sent with a 5xx. ok is false
// when the error carries no such hint.
func RetryAfter(err error) (wait time.Duration, ok bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.Wait, true
	}
	var api *APIError
	if errors.As(err, &api) && api.retryAfter > 0 {
		return api.retryAfter, true
	}
	return 0, false
}

// errorFromResponse turns a non-2xx answer into the matching typed error.
// Every value in secrets (what the request wrote, e.g. a password returned
// to a custom field) is scrubbed from the message: HighLevel's validation
// answers can echo what they refused.
func errorFromResponse(status int, header http.Header, body []byte, now time.Time, secrets []string) error {
	msg := errorMessage(body, secrets)
	if status == http.StatusTooManyRequests {
		return &RateLimitError{Wait: rateLimitWait(header, now), Message: msg}
	}
	e := &APIError{Status: status, Message: msg}
	switch {
	case status == http.StatusUnauthorized:
		e.kind = ErrUnauthorized
	case status == http.StatusForbidden:
		e.kind = ErrForbidden
	case status == http.StatusNotFound:
		e.kind = ErrNotFound
	case (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && saysNotFound(msg):
		e.kind = ErrNotFound
	case status >= 500:
		if d, ok := retryAfterHeader(header, now); ok {
			e.retryAfter = d
		}
	}
	return e
}

// saysNotFound recognises HighLevel's 400/422 answers about a contact that
// does not exist ("Contact not found", "contact does not exist", ...).
func saysNotFound(msg string) bool {
	m := strings.ToLower(msg)
	if !strings.Contains(m, "contact") {
		return false
	}
	return strings.Contains(m, "not found") ||
		strings.Contains(m, "does not exist") ||
		strings.Contains(m, "doesn't exist") ||
		strings.Contains(m, "no contact")
}

// maxMessage bounds how much of an error body ends up in an error string.
const maxMessage = 300

// errorMessage extracts HighLevel's "message" (a string or an array of
// strings), falling back to "error" and then to a trimmed excerpt of a
// non-JSON body, with every secret replaced by [redacted]. Scrubbing comes
// before truncating, so no cut-off part of a secret survives either.
func errorMessage(body []byte, secrets []string) string {
	var e struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
		Msg     json.RawMessage `json:"msg"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return truncate(scrub(strings.TrimSpace(string(body)), secrets))
	}
	for _, raw := range []json.RawMessage{e.Message, e.Msg, e.Error} {
		if s := messageText(raw); s != "" {
			return truncate(scrub(s, secrets))
		}
	}
	return ""
}

// scrub replaces each secret in s, as it is and as JSON would escape it
// (a non-JSON body may quote a JSON request), with [redacted].
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, "[redacted]")
		if quoted, err := json.Marshal(secret); err == nil {
			if esc := string(quoted[1 : len(quoted)-1]); esc != secret {
				s = strings.ReplaceAll(s, esc, "[redacted]")
			}
		}
	}
	return s
}

func messageText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, v := range list {
			if t := strings.TrimSpace(valueString(v)); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// rateLimitWait derives the wait of a 429 from its headers.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	if d, ok := retryAfterHeader(h, now); ok {
		return d
	}
	if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get(headerInterval)), 10, 64); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return defaultRateLimitWait
}

// retryAfterHeader parses Retry-After as delay-seconds or an HTTP date.
func retryAfterHeader(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

// redactedError hides the token in an error's text while keeping the chain,
// so errors.Is/As behave as before. It is the last line of defence: the token
// only travels in a header, but an upstream proxy could echo it back.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every occurrence of secret in its text replaced.
func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(msg, secret, "[redacted]"), err: err}
}
