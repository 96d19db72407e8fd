package wordpress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
)

// DefaultTimeout bounds one request to WordPress when Config.Timeout is zero.
const DefaultTimeout = 20 * time.Second

// Config says which site to talk to and as whom.
type Config struct {
	// URL is the site's address, e.g. https://example.com or
	// https://example.com/blog. It must not carry credentials.
	URL string
	// Username is the login of the user the application password belongs to.
	Username string
	// AppPassword is an application password of that user (spaces allowed,
	// as WordPress shows it). It is sent only in the Authorization header.
	AppPassword string
	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration
	// Logger receives one debug line per request (method, route, status,
	// duration): never a body, a header or a credential. Nil discards.
	Logger *slog.Logger
	// Transport replaces the HTTP transport, for tests; nil uses the default.
	Transport http.RoundTripper
	// MaxConcurrent is the most requests in flight at once from this
	// client. Within it, a Pace adapts the number to the site's response
	// time, starting at 1, so a storm of webhooks never floods the site;
	// 0 means no cap and no pacing.
	MaxConcurrent int
	// FixedConcurrency keeps MaxConcurrent requests allowed in flight
	// instead of adapting: for benchmarks that compare the adaptive limit
	// with fixed ones.
	FixedConcurrency bool
}

// Client calls one WordPress site's REST API. It is safe for concurrent use.
type Client struct {
	rest   *resty.Client
	base   string
	user   string
	logger *slog.Logger
	pace   *Pace // nil: no cap on concurrent requests

	mu     sync.Mutex
	routes routeStyle // how this site serves REST routes, found on first use
}

type routeStyle int

const (
	routesUnknown routeStyle = iota
	routesPretty             // /wp-json/wp/v2/users
	routesQuery              // /?rest_route=/wp/v2/users
)

// New validates cfg and returns a client. It does not touch the network;
// call Verify to check the site and the credentials.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	switch {
	case cfg.URL == "":
		return nil, errors.New("wordpress: site URL is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, errors.New("wordpress: site URL must be an absolute http(s) URL")
	case u.User != nil:
		return nil, errors.New("wordpress: site URL must not contain credentials; give the username and application password separately")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("wordpress: site URL must not have a query or fragment")
	case cfg.Username == "":
		return nil, errors.New("wordpress: username is required")
	case cfg.AppPassword == "":
		return nil, errors.New("wordpress: application password is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rest := resty.New().
		SetTimeout(cfg.Timeout).
		SetBasicAuth(cfg.Username, cfg.AppPassword).
		SetHeader("Accept", "application/json").
		SetHeader("User-Agent", "hlbridge").
		SetDisableWarn(true).
		// Never follow a redirect: it would drop the Authorization header or
		// send it to another host. A redirecting URL is a configuration error.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}))
	if cfg.Transport != nil {
		rest.SetTransport(cfg.Transport)
	}
	var pace *Pace
	if cfg.MaxConcurrent > 0 {
		pace = NewPace(cfg.MaxConcurrent, nil)
		if cfg.FixedConcurrency {
			pace.fixed, pace.limit = true, float64(pace.bound)
		}
	}
	return &Client{
		pace:   pace,
		rest:   rest,
		base:   strings.TrimRight(u.String(), "/"),
		user:   cfg.Username,
		logger: logger,
	}, nil
}

// call is one REST request: route is a REST route such as "/wp/v2/users/5".
type call struct {
	op     string
	method string
	route  string
	query  url.Values
	body   any
	out    any
}

// do sends c, decodes a 2xx JSON answer into c.out and turns anything else
// into an *Error. It returns the response headers for paging.
func (c *Client) do(ctx context.Context, cl call) (http.Header, error) {
	style, err := c.routeStyle(ctx)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, style, cl)
}

// WithWriteCheck returns ctx with check, which the client calls right
// before it sends each request that writes (any method but GET), once the
// request has its place among those in flight (see Pace): a non-nil error
// stops the write, and the call returns that error as it is. A check made
// by the caller before the call could be stale by then, since the wait
// for a place can be long. (The bridge's write fence uses it.)
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

func (c *Client) send(ctx context.Context, style routeStyle, cl call) (http.Header, error) {
	if c.pace != nil {
		ticket, err := c.pace.Acquire(ctx, cl.method+" "+routeKind(cl.route))
		if err != nil {
			return nil, &Error{Op: cl.op, Err: err}
		}
		outcome := Ignored
		defer func() { ticket.Done(outcome) }()
		if err := checkWrite(ctx, cl.method); err != nil {
			return nil, err
		}
		h, status, err := c.exchange(ctx, style, cl)
		if status > 0 {
			// One route may answer different work: the companion's
			// find-or-create finds a user (200) or creates one (201), and
			// a refusal is quicker than either. Each keeps its own
			// baseline, so that a mix of them does not look like a slow site.
			ticket.kind += " " + strconv.Itoa(status)
		}
		outcome = paceOutcome(ctx, err)
		return h, err
	}
	if err := checkWrite(ctx, cl.method); err != nil {
		return nil, err
	}
	h, _, err := c.exchange(ctx, style, cl)
	return h, err
}

// ConcurrencyLimit is the number of requests the client currently lets be
// in flight (see Pace), or 0 when MaxConcurrent was 0 (no cap).
func (c *Client) ConcurrencyLimit() int {
	if c.pace == nil {
		return 0
	}
	return c.pace.Limit()
}

// routeKind is route without its ids, so that the requests of one kind
// share a latency baseline: /wp/v2/users/5 becomes /wp/v2/users/#.
func routeKind(route string) string {
	b := make([]byte, 0, len(route))
	for i := 0; i < len(route); i++ {
		if route[i] >= '0' && route[i] <= '9' {
			if len(b) == 0 || b[len(b)-1] != '#' {
				b = append(b, '#')
			}
			continue
		}
		b = append(b, route[i])
	}
	return string(b)
}

// paceOutcome says what a request's result tells of the site's load: a
// 5xx (503 included), a 429, a time-out or a failed connection means
// overloaded (a site coming back up is met gently); a request its caller
// cancelled tells nothing.
func paceOutcome(ctx context.Context, err error) Outcome {
	if err == nil {
		return Done
	}
	if ctx.Err() != nil {
		return Ignored
	}
	var e *Error
	if errors.As(err, &e) {
		switch {
		case e.Status == http.StatusTooManyRequests || e.Status >= 500:
			return Overloaded
		case e.Status != 0:
			return Done
		}
	}
	return Overloaded
}

// exchange sends cl once and interprets the answer; it returns the
// answer's headers and status (0 when none came).
func (c *Client) exchange(ctx context.Context, style routeStyle, cl call) (http.Header, int, error) {
	req := c.rest.R().SetContext(ctx)
	query := url.Values{}
	for k, v := range cl.query {
		query[k] = v
	}
	target := c.base + "/wp-json" + cl.route
	if style == routesQuery {
		target = c.base + "/"
		query.Set("rest_route", cl.route)
	}
	req.SetQueryParamsFromValues(query)
	if cl.body != nil {
		req.SetHeader("Content-Type", "application/json").SetBody(cl.body)
	}
	start := time.Now()
	resp, err := req.Execute(cl.method, target)
	if err != nil {
		c.logger.DebugContext(ctx, "wordpress request failed", slog.String("method", cl.method),
			slog.String("route", cl.route), slog.Duration("duration", time.Since(start)))
		return nil, 0, &Error{Op: cl.op, Err: transportError(err)}
	}
	status := resp.StatusCode()
	c.logger.DebugContext(ctx, "wordpress request", slog.String("method", cl.method),
		slog.String("route", cl.route), slog.Int("status", status),
		slog.Duration("duration", time.Since(start)))
	if status >= 300 {
		return resp.Header(), status, responseError(cl.op, resp)
	}
	if !isJSON(resp.Header()) {
		return resp.Header(), status, &Error{Op: cl.op, Status: status, Err: ErrNotWordPress}
	}
	if cl.out != nil {
		if err := json.Unmarshal(resp.Body(), cl.out); err != nil {
			return resp.Header(), status, &Error{Op: cl.op, Status: status, Err: fmt.Errorf("decode answer: %w", err)}
		}
	}
	return resp.Header(), status, nil
}

// routeStyle finds out once whether the site serves /wp-json/ (pretty
// permalinks) or only ?rest_route= (plain permalinks: /wp-json/ then answers
// the HTML home page with a 200).
func (c *Client) routeStyle(ctx context.Context) (routeStyle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.routes != routesUnknown {
		return c.routes, nil
	}
	var index struct {
		Namespaces []string `json:"namespaces"`
	}
	probe := call{op: "discover REST API", method: http.MethodGet, route: "/", out: &index}
	var firstErr error
	for _, style := range []routeStyle{routesPretty, routesQuery} {
		_, err := c.send(ctx, style, probe)
		if err == nil && len(index.Namespaces) > 0 {
			c.routes = style
			return style, nil
		}
		if Retryable(err) {
			return routesUnknown, err // the site is down: try again on the next call
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil { // JSON, but not WordPress's REST index
		firstErr = &Error{Op: "discover REST API", Status: http.StatusOK, Err: ErrNotWordPress}
	}
	return routesUnknown, firstErr
}

// wpError is WordPress's error body.
type wpError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Data    struct {
		Params  map[string]any `json:"params"`
		Details map[string]struct {
			Code string `json:"code"`
		} `json:"details"`
	} `json:"data"`
}

var tags = regexp.MustCompile(`<[^>]*>`)

func responseError(op string, resp *resty.Response) error {
	e := &Error{Op: op, Status: resp.StatusCode()}
	if s := resp.Header().Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	var body wpError
	if isJSON(resp.Header()) && json.Unmarshal(resp.Body(), &body) == nil && body.Code != "" {
		e.Code = body.Code
		e.Message = strings.TrimSpace(html.UnescapeString(tags.ReplaceAllString(body.Message, "")))
		for p, msg := range body.Data.Params {
			e.Params = append(e.Params, p)
			if m, ok := msg.(string); ok && m != "" {
				e.Message += " (" + p + ": " + strings.TrimSpace(tags.ReplaceAllString(m, "")) + ")"
			}
		}
		slices.Sort(e.Params)
		for _, d := range body.Data.Details {
			if d.Code != "" {
				e.DetailCodes = append(e.DetailCodes, d.Code)
			}
		}
		return e
	}
	e.Message = http.StatusText(resp.StatusCode())
	if loc := resp.Header().Get("Location"); e.Status < 400 && loc != "" {
		e.Message = fmt.Sprintf("the site redirects to %s; configure that address as the site URL", redactURL(loc))
	}
	return e
}

func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// transportError strips the request URL from a transport error: the URL
// holds no secret, but the error is clearer without resty's decoration.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", strings.ToUpper(ue.Op), redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.User = nil
	return u.Redacted()
}
