package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// routes is the whole HTTP surface of hlbridge.
func (s *Server) routes() {
	e := s.engine
	e.HandleMethodNotAllowed = true
	// A webhook sender may not follow redirects (and a redirected POST may
	// lose its body): a path with a stray slash is answered 404, not 301.
	e.RedirectTrailingSlash = false
	e.Use(s.recoverPanics(), s.logRequests())
	e.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "no such endpoint") })
	e.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method not allowed") })

	// Liveness (the process answers) and readiness (the store answers and
	// WordPress answered recently), for Docker's HEALTHCHECK and load balancers.
	e.GET("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)
	if s.metrics != nil {
		// Counts only; behind the admin token when there is one.
		e.GET("/metrics", s.requireAdminIfSet, gin.WrapH(s.metrics.Handler()))
	}

	// WP Fusion's webhook URL, so a workflow moves over by changing the host:
	// /?wpf_action=add&access_key=KEY&contact_id={{contact.id}}
	e.GET("/", s.countWebhooks, s.handleWPFusion)
	e.POST("/", s.countWebhooks, s.handleWPFusion)

	// HighLevel's signed marketplace app webhooks (ContactUpdate, ...).
	e.POST("/hooks/highlevel/app", s.countWebhooks, s.handleAppEvent)

	// The same actions with the key in a header, out of URLs and logs.
	e.GET("/hooks/highlevel/:action", s.countWebhooks, s.handleHook)
	e.POST("/hooks/highlevel/:action", s.countWebhooks, s.handleHook)

	// The operator's view of the queue, with Authorization: Bearer
	// BRIDGE_ADMIN_TOKEN; absent when no token is configured.
	if s.cfg.AdminToken != "" {
		// The events page, for a browser (see adminpage.go): signed in by
		// a session cookie or the bearer token; its forms carry a CSRF token.
		e.GET("/admin", s.handleAdminPage)
		e.POST("/admin/login", s.handleAdminLogin)
		e.POST("/admin/logout", s.handleAdminLogout)
		e.POST("/admin/retry", s.handleAdminRetry)
		admin := e.Group("/admin", s.requireAdmin)
		admin.GET("/events", s.handleListEvents)
		admin.GET("/events/:id", s.handleGetEvent)
		admin.POST("/events/:id/retry", s.handleRetryEvent)
		admin.POST("/events/retry-failed", s.handleRetryFailed)
	}
}
