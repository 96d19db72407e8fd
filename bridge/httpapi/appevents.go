package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
)

// appEventAction says what a marketplace app event does to the contact's
// user. Contact events never create users: an app sees every contact of the
// location, and a user for every contact is what WP Fusion warns against
// for global triggers. Creating users stays with workflows (add). A
// ContactDelete deactivates the contact's user when a deactivation policy
// is set (onDelete), and is ignored otherwise.
func appEventAction(eventType string, onDelete bridge.Deactivation) (bridge.Action, bool) {
	switch eventType {
	case highlevel.EventContactDelete:
		return bridge.ActionDeactivate, onDelete != bridge.DeactivateIgnore
	case highlevel.EventContactCreate, highlevel.EventContactUpdate:
		return bridge.ActionUpdate, true
	case highlevel.EventContactTagUpdate:
		return bridge.ActionUpdateTags, true
	}
	return "", false
}

// handleAppEvent serves POST /hooks/highlevel/app: HighLevel's signed
// marketplace app webhooks. HighLevel retries any non-2xx answer and pauses
// endpoints that fail often, so events the bridge does not act on are
// acknowledged with 200 "ignored"; only forged, stale or malformed
// deliveries are refused.
func (s *Server) handleAppEvent(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(c, http.StatusRequestEntityTooLarge, "the body is larger than "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes")
		return
	case err != nil:
		fail(c, http.StatusBadRequest, "could not read the body")
		return
	}
	if err := s.appVerifier.Verify(c.Request.Header, body); err != nil {
		if errors.Is(err, highlevel.ErrUnsigned) {
			fail(c, http.StatusUnauthorized, "the webhook is not signed: HighLevel signs app webhooks with X-GHL-Signature")
		} else {
			fail(c, http.StatusUnauthorized, "the webhook's signature does not verify")
		}
		return
	}
	ev, err := highlevel.ParseAppEvent(body)
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	attrs := []slog.Attr{slog.String("event", ev.Type), slog.String("webhook_id", ev.WebhookID), slog.String("contact_id", ev.ContactID)}
	if err := ev.CheckFresh(time.Now(), highlevel.DefaultFreshWindow); err != nil {
		s.logger.LogAttrs(c, slog.LevelWarn, "stale app event refused", append(attrs, slog.String("error", err.Error()))...)
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	action, ok := appEventAction(ev.Type, s.syncer.OnContactDelete())
	ignore := func(why string) {
		s.logger.LogAttrs(c, slog.LevelInfo, "app event ignored", append(attrs, slog.String("why", why))...)
		c.JSON(http.StatusOK, gin.H{"status": "ignored", "event": ev.Type, "message": why})
	}
	switch {
	case !ok && ev.Type == highlevel.EventContactDelete:
		ignore("BRIDGE_ON_CONTACT_DELETE is ignore: deleted contacts leave their users as they are")
		return
	case !ok:
		ignore("hlbridge does not act on " + ev.Type + " events")
		return
	case s.cfg.LocationID != "" && ev.LocationID != s.cfg.LocationID:
		ignore("the event is for another location")
		return
	case !contactIDPattern.MatchString(ev.ContactID):
		fail(c, http.StatusBadRequest, "the event's contact id is not a HighLevel contact id")
		return
	}
	req := bridge.Request{Action: action, ContactID: ev.ContactID}
	if s.syncer.PayloadMode() && action != bridge.ActionDeactivate {
		s.syncer.TakePayload(&req, ev.Contact)
	}
	// The webhookId is the delivery's identity: a replay of it inside the
	// dedupe window is acknowledged without new work.
	out, err := s.dispatch.Dispatch(c.Request.Context(), req, bridge.Delivery{WebhookID: ev.WebhookID})
	s.respond(c, req, out, err)
}
