package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
)

// ServerConfig is what the HTTP intake needs to know.
type ServerConfig struct {
	// AccessKey is the shared secret of HighLevel's workflow webhooks
	// (WP Fusion's access_key). Required.
	AccessKey string
	// MaxBodyBytes bounds a webhook body; 1 MiB when zero.
	MaxBodyBytes int64
}

// Server is hlbridge's HTTP surface; see routes.go for the routes.
type Server struct {
	cfg      ServerConfig
	keyHash  [32]byte
	syncer   *Syncer
	dispatch Dispatcher
	logger   *slog.Logger
	engine   *gin.Engine
}

// NewServer returns the HTTP handler of the intake. syncer decides what a
// request may ask for (roles, payload mode); dispatch carries it out.
func NewServer(cfg ServerConfig, syncer *Syncer, dispatch Dispatcher, logger *slog.Logger) (*Server, error) {
	switch {
	case cfg.AccessKey == "":
		return nil, errors.New("bridge: access key is required")
	case syncer == nil || dispatch == nil:
		return nil, errors.New("bridge: syncer and dispatcher are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, keyHash: sha256.Sum256([]byte(cfg.AccessKey)), syncer: syncer,
		dispatch: dispatch, logger: logger, engine: gin.New()}
	s.routes()
	return s, nil
}

// ServeHTTP serves the intake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// keyMatches compares a presented access key with the configured one in
// constant time (hashing first, so not even the length leaks).
func (s *Server) keyMatches(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	return presented != "" && subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}
