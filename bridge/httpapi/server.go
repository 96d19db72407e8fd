// Package httpapi is hlbridge's HTTP surface, on gin: the webhook intake
// (WP Fusion's URLs, the /hooks/highlevel/ routes, HighLevel's signed app
// events), the operator's admin API, /healthz, /readyz and /metrics, request
// logging without secrets, and the limit on failed access keys. It turns
// webhooks into bridge.Requests for a bridge.Dispatcher and shows
// bridge.Events; it knows nothing of the queue or its store.
package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/highlevel"
)

// Config is what the HTTP surface needs to know.
type Config struct {
	// AccessKey is the shared secret of HighLevel's workflow webhooks
	// (WP Fusion's access_key). Required.
	AccessKey string
	// MaxBodyBytes bounds a webhook body; 1 MiB when zero.
	MaxBodyBytes int64
	// SyncByDefault makes webhooks without sync= wait for their outcome.
	SyncByDefault bool
	// AdminToken protects the admin API (Authorization: Bearer TOKEN);
	// empty turns the admin API off.
	AdminToken string
	// LocationID, when set, is the only HighLevel location whose app
	// events are acted on.
	LocationID string
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For and X-Real-IP headers name the client. Empty (the
	// default) trusts none: the client is the connection's peer, so a
	// forged header cannot dodge the failure limit.
	TrustedProxies []string
	// AuthFailuresPerMinute and AuthFailureBurst limit wrong or missing
	// secrets per client address (IPv6: per /64): past the burst, failures
	// beyond this rate are answered 429 with Retry-After. Requests with the
	// right secret are never limited. Zero means 5 and 5.
	AuthFailuresPerMinute int
	AuthFailureBurst      int
	// WordPressURL is the site's address, for the events page's links to
	// a user's edit screen; empty shows no links.
	WordPressURL string
}

// Deps are the parts the HTTP surface works with.
type Deps struct {
	// Syncer decides what a request may ask for (roles, payload mode).
	Syncer *bridge.Syncer
	// Dispatcher carries requests out: the durable queue.
	Dispatcher bridge.Dispatcher
	// Events serves the admin API; nil turns it off.
	Events bridge.Events
	// Metrics are served at /metrics; nil turns them off.
	Metrics *metrics.Metrics
	// AppVerifier checks the signatures of HighLevel's app webhooks; nil
	// uses HighLevel's published keys.
	AppVerifier *highlevel.Verifier
	// Logger receives request and outcome lines; nil discards.
	Logger *slog.Logger
	// Ready are the checks of /readyz (the store, WordPress); none makes
	// /readyz the same as /healthz.
	Ready []ReadyCheck
}

// Server is hlbridge's HTTP surface; see routes.go for the routes.
type Server struct {
	cfg         Config
	keyHash     [32]byte
	adminHash   [32]byte
	syncer      *bridge.Syncer
	dispatch    bridge.Dispatcher
	events      bridge.Events
	metrics     *metrics.Metrics
	appVerifier *highlevel.Verifier
	authLimit   *failureLimiter
	logger      *slog.Logger
	ready       []ReadyCheck
	trusted     []*net.IPNet // cfg.TrustedProxies, for X-Forwarded-Proto
	engine      *gin.Engine
}

// NewServer returns the HTTP handler of hlbridge.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	switch {
	case cfg.AccessKey == "":
		return nil, errors.New("bridge: access key is required")
	case deps.Syncer == nil || deps.Dispatcher == nil:
		return nil, errors.New("bridge: syncer and dispatcher are required")
	case cfg.AdminToken != "" && deps.Events == nil:
		return nil, errors.New("bridge: the admin API needs the event store")
	}
	for _, rc := range deps.Ready {
		if rc.Name == "" || rc.Check == nil {
			return nil, errors.New("bridge: a readiness check needs a name and a func")
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, keyHash: sha256.Sum256([]byte(cfg.AccessKey)), syncer: deps.Syncer,
		dispatch: deps.Dispatcher, events: deps.Events, metrics: deps.Metrics, appVerifier: deps.AppVerifier,
		logger: logger, ready: deps.Ready, engine: gin.New(),
		authLimit: newFailureLimiter(cfg.AuthFailuresPerMinute, cfg.AuthFailureBurst, DefaultAuthFailureClients)}
	// gin trusts X-Forwarded-For from anyone unless told otherwise.
	if err := s.engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("bridge: trusted proxies: %w", err)
	}
	for _, p := range cfg.TrustedProxies {
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		if _, n, err := net.ParseCIDR(p); err == nil {
			s.trusted = append(s.trusted, n)
		}
	}
	if s.appVerifier == nil {
		s.appVerifier = highlevel.DefaultVerifier()
	}
	if cfg.AdminToken != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the intake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// keyMatches compares a presented access key with the configured one in
// constant time (hashing first, so not even the length leaks).
func (s *Server) keyMatches(presented string) bool { return secretMatches(presented, s.keyHash) }

// secretMatches compares presented with a secret's hash in constant time.
func secretMatches(presented string, want [32]byte) bool {
	h := sha256.Sum256([]byte(presented))
	return presented != "" && subtle.ConstantTimeCompare(h[:], want[:]) == 1
}
