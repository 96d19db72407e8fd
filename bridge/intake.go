package bridge

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/highlevel"
)

// contactIDPattern is what a HighLevel contact id looks like (20-odd
// letters and digits); anything else is refused before it goes further.
var contactIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (s *Server) handleHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// handleWPFusion serves WP Fusion's URL: the action in wpf_action and the
// key in access_key.
func (s *Server) handleWPFusion(c *gin.Context) {
	if !s.keyMatches(c.Query("access_key")) {
		fail(c, http.StatusUnauthorized, "access_key is missing or wrong")
		return
	}
	s.intake(c, c.Query("wpf_action"), "wpf_action")
}

// handleHook serves /hooks/highlevel/{action} with the key in X-Access-Key.
func (s *Server) handleHook(c *gin.Context) {
	if !s.keyMatches(c.GetHeader("X-Access-Key")) {
		fail(c, http.StatusUnauthorized, "X-Access-Key header is missing or wrong")
		return
	}
	s.intake(c, c.Param("action"), "the action")
}

// intake turns one authenticated webhook into a Request and dispatches it.
func (s *Server) intake(c *gin.Context, actionName, actionParam string) {
	action, ok := ParseAction(actionName)
	if !ok {
		if actionName == "" {
			fail(c, http.StatusBadRequest, actionParam+" is required: add, update, update_tags or test")
		} else {
			fail(c, http.StatusBadRequest, actionParam+" must be add, update, update_tags or test")
		}
		return
	}
	if action == ActionTest {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "action": action, "message": "hlbridge received the test webhook"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		fail(c, http.StatusRequestEntityTooLarge, "the body is larger than "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes")
		return
	}
	if err != nil {
		fail(c, http.StatusBadRequest, "could not read the body")
		return
	}
	wh := &highlevel.WorkflowWebhook{}
	if jsonBody(c.Request, body) {
		if wh, err = highlevel.ParseWorkflowWebhook(body); err != nil {
			fail(c, http.StatusBadRequest, "the body is not a HighLevel webhook: "+err.Error())
			return
		}
	}
	req := Request{Action: action, ContactID: c.Query("contact_id"), Role: c.Query("role")}
	if !action.TakesRole() {
		req.Role = "" // update_tags never changes roles: its role= is ignored (README)
	}
	if wh.ContactID != "" {
		req.ContactID = wh.ContactID // as WP Fusion does: the body wins
	}
	switch {
	case req.ContactID == "":
		fail(c, http.StatusBadRequest, "contact_id is required: add contact_id={{contact.id}} to the URL, or send HighLevel's webhook body")
		return
	case !contactIDPattern.MatchString(req.ContactID):
		fail(c, http.StatusBadRequest, "contact_id is not a HighLevel contact id")
		return
	}
	if req.SendNotification, err = parseFlag(c.Query("send_notification")); err != nil {
		fail(c, http.StatusBadRequest, "send_notification must be true or false")
		return
	}
	wait, err := parseFlag(c.Query("sync"))
	if _, given := c.GetQuery("sync"); !given {
		wait = s.cfg.SyncByDefault
	}
	if err != nil {
		fail(c, http.StatusBadRequest, "sync must be true or false")
		return
	}
	if err := s.syncer.requestedRole(req.Role); err != nil {
		fail(c, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if s.syncer.PayloadMode() {
		if wh.Contact.Email == "" && wh.Contact.FirstName == "" && len(wh.Contact.Tags) == 0 {
			fail(c, http.StatusUnprocessableEntity, "no HighLevel token is configured, so the contact must come in the webhook's JSON body (use HighLevel's Webhook action)")
			return
		}
		s.syncer.TakePayload(&req, wh.Contact)
	}
	out, err := s.dispatch.Dispatch(c.Request.Context(), req, Delivery{Wait: wait})
	s.respond(c, req, out, err)
}

// respond is the one place where an outcome becomes an HTTP answer.
// Internal details are logged; the caller gets a short, safe reason.
func (s *Server) respond(c *gin.Context, req Request, out Outcome, err error) {
	attrs := []slog.Attr{slog.String("action", string(req.Action)), slog.String("contact_id", req.ContactID)}
	var refused *RefusedError
	switch {
	case err != nil:
		s.logger.LogAttrs(c, slog.LevelError, "could not accept webhook", append(attrs, slog.String("error", err.Error()))...)
		fail(c, http.StatusServiceUnavailable, "the bridge could not store the webhook; try again")
	case out.Duplicate:
		c.JSON(http.StatusOK, gin.H{"status": "duplicate", "event_id": out.EventID, "message": "this app event (its webhookId) was already received"})
	case !out.Done:
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted", "event_id": out.EventID, "action": req.Action, "contact_id": req.ContactID})
	case out.Err == nil:
		s.logger.LogAttrs(c, slog.LevelInfo, "synced", append(attrs, slog.Int64("user_id", out.Result.UserID),
			slog.Bool("created", out.Result.Created), slog.Any("changed", out.Result.Changed))...)
		c.JSON(http.StatusOK, gin.H{"status": "ok", "event_id": out.EventID, "action": req.Action,
			"contact_id": req.ContactID, "result": out.Result})
	case errors.As(out.Err, &refused):
		s.logger.LogAttrs(c, slog.LevelWarn, "refused", append(attrs, slog.String("reason", refused.Reason))...)
		c.JSON(http.StatusUnprocessableEntity, gin.H{"status": "refused", "event_id": out.EventID, "error": refused.Reason})
	case Retryable(out.Err):
		s.logger.LogAttrs(c, slog.LevelWarn, "sync failed, retryable", append(attrs, slog.String("error", out.Err.Error()))...)
		if d, ok := RetryAfter(out.Err); ok {
			c.Header("Retry-After", strconv.Itoa(int(d.Seconds()+0.999)))
		}
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "failed", "event_id": out.EventID,
			"error": "WordPress or HighLevel is unavailable; the sync will be retried"})
	default:
		s.logger.LogAttrs(c, slog.LevelError, "sync failed", append(attrs, slog.String("error", out.Err.Error()))...)
		c.JSON(http.StatusBadGateway, gin.H{"status": "failed", "event_id": out.EventID,
			"error": "WordPress or HighLevel refused the bridge's request; see the bridge's log"})
	}
}

// fail answers a refusal with a JSON body that says what is wrong.
func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"status": "error", "error": msg})
}

// jsonBody reports whether the body should be read as HighLevel's JSON.
func jsonBody(r *http.Request, body []byte) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err != nil || mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/plain"
}

// parseFlag reads a WP Fusion flag: "true", "1", "yes" or "on" is true;
// "", "false", "0", "no" or "off" is false; anything else is an error.
func parseFlag(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "", "false", "0", "no", "off":
		return false, nil
	}
	return false, errors.New("not a flag")
}
