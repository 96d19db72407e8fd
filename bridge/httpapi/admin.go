package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
)

// requireAdmin lets through requests with the admin token as a Bearer token.
func (s *Server) requireAdmin(c *gin.Context) {
	if len(c.Request.Header.Values("Authorization")) > 1 {
		s.keyFailed(c, surfaceAdmin, http.StatusBadRequest, "the Authorization header is given more than once; give it once")
		return
	}
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || !secretMatches(strings.TrimSpace(token), s.adminHash) {
		s.keyFailed(c, surfaceAdmin, http.StatusUnauthorized, "Authorization: Bearer <BRIDGE_ADMIN_TOKEN> is missing or wrong")
		return
	}
	c.Next()
}

// requireAdminIfSet checks the admin token only when one is configured.
func (s *Server) requireAdminIfSet(c *gin.Context) {
	if s.cfg.AdminToken == "" {
		c.Next()
		return
	}
	s.requireAdmin(c)
}

// handleListEvents answers GET /admin/events?failed=true&status=queued&contact_id=ID&limit=100.
func (s *Server) handleListEvents(c *gin.Context) {
	failed, err := parseFlag(c.Query("failed"))
	if err != nil {
		fail(c, http.StatusBadRequest, "failed must be true or false")
		return
	}
	f := bridge.EventFilter{Failed: failed, Status: c.Query("status"), ContactID: c.Query("contact_id")}
	switch f.Status {
	case "", bridge.StatusQueued, bridge.StatusDone, bridge.StatusRefused, bridge.StatusFailed:
	default:
		fail(c, http.StatusBadRequest, "status must be queued, done, refused or failed")
		return
	}
	if l := c.Query("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > 1000 {
			fail(c, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
	}
	evs, err := s.events.Events(c, f)
	if err != nil {
		s.adminError(c, err)
		return
	}
	if evs == nil {
		evs = []bridge.Event{}
	}
	c.JSON(http.StatusOK, gin.H{"events": evs})
}

func (s *Server) handleGetEvent(c *gin.Context) {
	id, ok := eventID(c)
	if !ok {
		return
	}
	ev, err := s.events.Event(c, id)
	if err != nil {
		s.adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, ev)
}

func (s *Server) handleRetryEvent(c *gin.Context) {
	id, ok := eventID(c)
	if !ok {
		return
	}
	if err := s.events.Retry(c, id); err != nil {
		s.adminError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"status": "queued", "event_id": id})
}

func (s *Server) handleRetryFailed(c *gin.Context) {
	ids, err := s.events.RetryFailed(c)
	if err != nil {
		s.adminError(c, err)
		return
	}
	if ids == nil {
		ids = []int64{}
	}
	c.JSON(http.StatusAccepted, gin.H{"status": "queued", "event_ids": ids})
}

func eventID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		fail(c, http.StatusBadRequest, "the event id must be a positive number")
		return 0, false
	}
	return id, true
}

// adminError answers an admin API failure.
func (s *Server) adminError(c *gin.Context, err error) {
	var notRetryable *bridge.NotRetryableError
	switch {
	case errors.Is(err, bridge.ErrNoEvent):
		fail(c, http.StatusNotFound, err.Error())
	case errors.As(err, &notRetryable):
		fail(c, http.StatusConflict, err.Error())
	default:
		s.logger.Error("admin request failed", "error", err.Error())
		fail(c, http.StatusServiceUnavailable, "the store did not answer; try again")
	}
}
