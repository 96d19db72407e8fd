// Package highlevel speaks to HighLevel (GoHighLevel): a client for the
// contacts and custom fields of API v2, and the parsing of the webhooks
// HighLevel's workflows post. It knows nothing of WordPress or of what the
// bridge does with a contact; highleveltest holds a fake of the API for
// tests.
package highlevel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-resty/resty/v2"
	"golang.org/x/time/rate"
)

// DefaultBaseURL is HighLevel's API v2 endpoint.
const DefaultBaseURL = "https://services.leadconnectorhq.com"

// APIVersion is the value of the Version header every API v2 call carries;
// without it HighLevel answers 401 "version header was not found.".
const APIVersion = "2021-07-28"

// Defaults for the zero values of Config.
const (
	DefaultTimeout      = 15 * time.Second
	DefaultCatalogueTTL = 10 * time.Minute
)

// maxResponseBody bounds what a single answer may make the client buffer.
const maxResponseBody = 16 << 20

// Config configures a Client. Token is required; the rest have defaults.
type Config struct {
	// BaseURL is the API root, without a trailing path; default
	// DefaultBaseURL. Tests point it at highleveltest.
	BaseURL string
	// Token is a sub-account Private Integration token or an OAuth location
	// token. Required. Never logged, never part of an error.
	Token string
	// LocationID is the sub-account id. Needed for the custom field
	// catalogue and for looking contacts up by email.
	LocationID string
	// Timeout bounds each request, including reading the answer; default
	// 15s.
	Timeout time.Duration
	// CatalogueTTL is how long the custom field catalogue is cached; default
	// 10m.
	CatalogueTTL time.Duration
	// Logger receives debug lines about requests (method, path, status,
	// duration, remaining rate limit) and warnings; never the token or field
	// values. Optional: nil discards.
	Logger *slog.Logger
	// RequestsPer10s is this client's budget of requests per 10 seconds,
	// kept by waiting before a request. HighLevel allows 100 per 10 s per
	// app and location; the default, DefaultRequestsPer10s, leaves room for
	// the sub-account's other integrations. Negative turns pacing off.
	RequestsPer10s int
}

// DefaultRequestsPer10s is the default request budget: 90% of HighLevel's
// burst limit of 100 requests per 10 seconds.
const DefaultRequestsPer10s = 90

// Client calls HighLevel's API v2. It does not retry: every error says, via
// Retryable and RetryAfter, whether and when the caller's queue should try
// again. A Client is safe for concurrent use.
type Client struct {
	rc         *resty.Client
	token      string
	locationID string
	ttl        time.Duration
	log        *slog.Logger
	now        func() time.Time

	rate    rateLimitTracker
	limiter *rate.Limiter // nil: no pacing

	// The custom field catalogue. catFetch is a one-slot semaphore held
	// while fetching, so concurrent misses cause one request, and a waiting
	// caller can still give up when its context ends.
	catFetch   chan struct{}
	catMu      sync.Mutex
	cat        *catalogue
	catRetryAt time.Time // after a failed refresh, keep using the stale catalogue until then
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	token := strings.TrimSpace(cfg.Token)
	if token == "" {
		return nil, errors.New("highlevel: Config.Token is required")
	}
	if strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, errors.New("highlevel: Config.Token contains whitespace or control characters")
	}
	base := strings.TrimSpace(cfg.BaseURL)
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("highlevel: Config.BaseURL %q is not an absolute http(s) URL", base)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("highlevel: Config.BaseURL must not carry credentials, a query or a fragment")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("highlevel: Config.Timeout %s is negative", cfg.Timeout)
	}
	if cfg.CatalogueTTL < 0 {
		return nil, fmt.Errorf("highlevel: Config.CatalogueTTL %s is negative", cfg.CatalogueTTL)
	}
	if strings.ContainsAny(cfg.LocationID, "/?#% \t\r\n") {
		return nil, fmt.Errorf("highlevel: Config.LocationID %q is not a location id", cfg.LocationID)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ttl := cfg.CatalogueTTL
	if ttl == 0 {
		ttl = DefaultCatalogueTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("component", "highlevel"))

	rc := resty.New().
		SetBaseURL(strings.TrimRight(u.String(), "/")).
		SetTimeout(timeout).
		SetAuthToken(token). // Authorization: Bearer <token>
		SetHeader("Version", APIVersion).
		SetHeader("Accept", "application/json").
		SetResponseBodyLimit(maxResponseBody).
		SetRetryCount(0). // the caller's queue retries, with Retryable/RetryAfter
		SetLogger(restyLogger{log: log, secret: token})

	var limiter *rate.Limiter
	if n := cfg.RequestsPer10s; n >= 0 {
		if n == 0 {
			n = DefaultRequestsPer10s
		}
		// A tenth of the budget as burst keeps every sliding 10 s window
		// within n + n/10 of the nominal limit's 100.
		limiter = rate.NewLimiter(rate.Limit(float64(n)/10), max(1, n/10))
	}
	return &Client{
		limiter:    limiter,
		rc:         rc,
		token:      token,
		locationID: strings.TrimSpace(cfg.LocationID),
		ttl:        ttl,
		log:        log,
		now:        time.Now,
		catFetch:   make(chan struct{}, 1),
	}, nil
}

// RateLimit returns the rate-limit budget HighLevel reported on the most
// recent answer that carried it.
func (c *Client) RateLimit() RateLimitState { return c.rate.get() }

// WithWriteCheck returns ctx with check, which the client calls right
// before it sends each request but a GET (every write, and the contact
// search, which reads by POST), once the request budget lets it go: a
// non-nil error stops the request, and the call returns that error as it
// is. A check made by the caller before the call could be stale by then,
// since the wait for the budget can be long. (The bridge's write fence
// uses it.)
func WithWriteCheck(ctx context.Context, check func() error) context.Context {
	return context.WithValue(ctx, writeCheckKey{}, check)
}

type writeCheckKey struct{}

// checkWrite runs ctx's write check for a request with method.
func checkWrite(ctx context.Context, method string) error {
	if method == http.MethodGet {
		return nil
	}
	if check, ok := ctx.Value(writeCheckKey{}).(func() error); ok {
		return check()
	}
	return nil
}

// call describes one API request.
type call struct {
	method     string
	path       string // with {param} placeholders, e.g. /contacts/{contactId}
	pathParams map[string]string
	query      map[string]string
	body       any // JSON-encoded when non-nil
	// secrets are values in body that must never reach an error (see
	// errorFromResponse); the token is always scrubbed.
	secrets []string
}

// do sends a request and decodes a 2xx JSON answer into out (when non-nil).
// Every other outcome becomes a typed error; none of them contains the token.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("highlevel: waiting for the request budget: %w", err)
		}
	}
	if err := checkWrite(ctx, cl.method); err != nil {
		return err
	}
	req := c.rc.R().SetContext(ctx)
	for k, v := range cl.pathParams {
		req.SetPathParam(k, v) // escaped with url.PathEscape
	}
	for k, v := range cl.query {
		req.SetQueryParam(k, v)
	}
	if cl.body != nil {
		req.SetHeader("Content-Type", "application/json").SetBody(cl.body)
	}
	// Ids are not secrets and make a log line useful; the query (which may
	// hold an email) and bodies (field values) are never logged.
	attrs := []any{slog.String("method", cl.method), slog.String("path", cl.path)}
	for k, v := range cl.pathParams {
		attrs = append(attrs, slog.String(k, v))
	}
	start := c.now()
	resp, err := req.Execute(cl.method, cl.path)
	if err != nil {
		err = redact(err, c.token)
		c.log.DebugContext(ctx, "highlevel request failed", append(attrs,
			slog.Duration("duration", c.now().Sub(start)), slog.String("error", err.Error()))...)
		return err
	}
	c.rate.observe(resp.Header(), c.now())
	status := resp.StatusCode()
	c.log.DebugContext(ctx, "highlevel request", append(attrs,
		slog.Int("status", status), slog.Duration("duration", c.now().Sub(start)),
		slog.Int("ratelimit_remaining", c.rate.get().Remaining))...)

	if status < 200 || status > 299 {
		// The token only travels in a header, but never trust an error
		// body (or a proxy in front of HighLevel) not to echo it.
		body := bytes.ReplaceAll(resp.Body(), []byte(c.token), []byte("[redacted]"))
		return errorFromResponse(status, resp.Header(), body, c.now(), cl.secrets)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body(), out); err != nil {
		return fmt.Errorf("highlevel: decode %s %s answer: %w", cl.method, cl.path, err)
	}
	return nil
}

// validID rejects ids that cannot be a HighLevel id and would change the
// request path ("", ".", ".."); slashes are escaped by resty.
func validID(what, id string) error {
	if strings.TrimSpace(id) == "" || id == "." || id == ".." {
		return fmt.Errorf("highlevel: %s %q is not a valid id", what, id)
	}
	return nil
}

// restyLogger routes resty's own log lines to slog, with the token scrubbed.
// Resty's debug mode, which would dump the Authorization header, is never
// enabled.
type restyLogger struct {
	log    *slog.Logger
	secret string
}

func (l restyLogger) line(format string, v []any) string {
	return strings.ReplaceAll(fmt.Sprintf(format, v...), l.secret, "[redacted]")
}

func (l restyLogger) Errorf(format string, v ...any) {
	l.log.Error(l.line(format, v), slog.String("source", "resty"))
}

func (l restyLogger) Warnf(format string, v ...any) {
	l.log.Warn(l.line(format, v), slog.String("source", "resty"))
}

func (l restyLogger) Debugf(format string, v ...any) {
	l.log.Debug(l.line(format, v), slog.String("source", "resty"))
}

var _ resty.Logger = restyLogger{}
