package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
)

// countWebhooks is the middleware of the webhook routes: it counts each
// webhook by action and the status answered.
func (s *Server) countWebhooks(c *gin.Context) {
	c.Next()
	if s.metrics == nil {
		return
	}
	name := c.Param("action")
	if name == "" {
		name = c.Query("wpf_action")
	}
	action, ok := bridge.ParseAction(name)
	switch {
	case c.FullPath() == "/hooks/highlevel/app":
		action = "app_event"
	case !ok:
		action = "invalid"
	}
	s.metrics.Webhook(string(action), c.Writer.Status())
}
