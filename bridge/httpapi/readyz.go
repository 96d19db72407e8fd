package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// ReadyCheck is one thing /readyz asks before it says the bridge can do its
// work: the store answers, WordPress answered recently. Check returns nil
// when ready, else why not; its message is shown to anyone who can reach
// /readyz, so it must hold no secret (the doors' errors hold none).
type ReadyCheck struct {
	// Name labels the check in /readyz's answer, e.g. "store".
	Name string
	// Check is given readyCheckTimeout.
	Check func(ctx context.Context) error
}

// readyCheckTimeout bounds each readiness check, so that a hung store or
// site answers 503 well within a load balancer's or Docker's probe timeout.
const readyCheckTimeout = 5 * time.Second

// handleReady answers GET /readyz: 200 {"status":"ready","checks":{...}}
// when every check passes, else 503 {"status":"not ready",...} with each
// failing check's reason. /healthz stays a liveness check: the process
// answers.
func (s *Server) handleReady(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyCheckTimeout)
	defer cancel()
	results := make(map[string]string, len(s.ready))
	var mu sync.Mutex
	var wg sync.WaitGroup
	ready := true
	for _, rc := range s.ready {
		wg.Go(func() {
			msg := "ok"
			if err := rc.Check(ctx); err != nil {
				msg = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			results[rc.Name] = msg
			if msg != "ok" {
				ready = false
			}
		})
	}
	wg.Wait()
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "checks": results})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": results})
}
