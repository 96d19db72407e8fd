package httpapi

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
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
	q, ok := strictQuery(c)
	if !ok {
		return
	}
	key, err := single(q, "access_key")
	switch {
	case err != nil:
		s.keyFailed(c, surfaceWorkflow, http.StatusBadRequest, err.Error())
		return
	case !s.keyMatches(key):
		s.keyFailed(c, surfaceWorkflow, http.StatusUnauthorized, "access_key is missing or wrong")
		return
	}
	action, err := single(q, "wpf_action")
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	s.intake(c, q, action, "wpf_action")
}

// handleHook serves /hooks/highlevel/{action} with the key in X-Access-Key.
func (s *Server) handleHook(c *gin.Context) {
	q, ok := strictQuery(c)
	if !ok {
		return
	}
	switch keys := c.Request.Header.Values("X-Access-Key"); {
	case len(keys) > 1:
		s.keyFailed(c, surfaceHook, http.StatusBadRequest, "the X-Access-Key header is given more than once; give it once")
		return
	case !s.keyMatches(c.GetHeader("X-Access-Key")):
		s.keyFailed(c, surfaceHook, http.StatusUnauthorized, "X-Access-Key header is missing or wrong")
		return
	}
	s.intake(c, q, c.Param("action"), "the action")
}

// strictQuery parses the query string, refusing one that does not parse
// (a bad %-escape, a ";" separator): url.Values would silently drop the
// broken pairs, and a request that means something else than it says is
// refused rather than guessed at.
func strictQuery(c *gin.Context) (url.Values, bool) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		fail(c, http.StatusBadRequest, "the query string is malformed (a bad %-escape or a ';' separator)")
		return nil, false
	}
	return q, true
}

// single returns the one value of the query parameter name, "" when it is
// absent. A parameter given twice (contact_id=a&contact_id=b) is an error:
// which one HighLevel meant cannot be known, so the request is refused.
func single(q url.Values, name string) (string, error) {
	switch vs := q[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", errors.New(name + " is given more than once; give it once")
}

// intake turns one authenticated webhook into a Request and dispatches it.
func (s *Server) intake(c *gin.Context, q url.Values, actionName, actionParam string) {
	action, ok := bridge.ParseAction(actionName)
	if !ok {
		if actionName == "" {
			fail(c, http.StatusBadRequest, actionParam+" is required: add, update, update_tags or test")
		} else {
			fail(c, http.StatusBadRequest, actionParam+" must be add, update, update_tags or test")
		}
		return
	}
	params := map[string]string{}
	for _, name := range []string{"contact_id", "role", "send_notification", "sync"} {
		v, err := single(q, name)
		if err != nil {
			fail(c, http.StatusBadRequest, err.Error())
			return
		}
		params[name] = v
	}
	if action == bridge.ActionTest {
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
	isJSON, err := jsonBody(c.Request, body)
	if err != nil {
		fail(c, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	if isJSON {
		if wh, err = highlevel.ParseWorkflowWebhook(body); err != nil {
			fail(c, http.StatusBadRequest, "the body is not a HighLevel webhook: "+err.Error())
			return
		}
		if wh.ContactIDNotString {
			fail(c, http.StatusBadRequest, "the body's contact_id must be a string (HighLevel's {{contact.id}})")
			return
		}
	}
	req := bridge.Request{Action: action, ContactID: params["contact_id"], Role: params["role"]}
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
	if req.SendNotification, err = parseFlag(params["send_notification"]); err != nil {
		fail(c, http.StatusBadRequest, "send_notification must be true or false")
		return
	}
	wait, err := parseFlag(params["sync"])
	if _, given := q["sync"]; !given {
		wait = s.cfg.SyncByDefault
	}
	if err != nil {
		fail(c, http.StatusBadRequest, "sync must be true or false")
		return
	}
	if err := s.syncer.CheckRequestedRole(req.Role); err != nil {
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
	out, err := s.dispatch.Dispatch(c.Request.Context(), req, bridge.Delivery{Wait: wait})
	s.respond(c, req, out, err)
}

// respond is the one place where an outcome becomes an HTTP answer.
// Internal details are logged; the caller gets a short, safe reason.
func (s *Server) respond(c *gin.Context, req bridge.Request, out bridge.Outcome, err error) {
	attrs := []slog.Attr{slog.String("action", string(req.Action)), slog.String("contact_id", req.ContactID)}
	var refused *bridge.RefusedError
	switch {
	case err != nil:
		s.logger.LogAttrs(c, slog.LevelError, "could not accept webhook", append(attrs, slog.String("error", err.Error()))...)
		fail(c, http.StatusServiceUnavailable, "the bridge could not store the webhook; try again")
	case out.Duplicate:
		c.JSON(http.StatusOK, gin.H{"status": "duplicate", "event_id": out.EventID, "message": "this app event (its webhookId) was already received"})
	case !out.Done:
		c.JSON(http.StatusAccepted, acceptedAnswer{Action: req.Action, ContactID: req.ContactID, EventID: out.EventID, Status: "accepted"})
	case out.Err == nil:
		s.logger.LogAttrs(c, slog.LevelInfo, "synced", append(attrs, slog.Int64("user_id", out.Result.UserID),
			slog.Bool("created", out.Result.Created), slog.Any("changed", out.Result.Changed))...)
		c.JSON(http.StatusOK, gin.H{"status": "ok", "event_id": out.EventID, "action": req.Action,
			"contact_id": req.ContactID, "result": out.Result})
	case errors.As(out.Err, &refused):
		s.logger.LogAttrs(c, slog.LevelWarn, "refused", append(attrs, slog.String("reason", refused.Reason))...)
		c.JSON(http.StatusUnprocessableEntity, gin.H{"status": "refused", "event_id": out.EventID, "error": refused.Reason})
	case bridge.Retryable(out.Err):
		s.logger.LogAttrs(c, slog.LevelWarn, "sync failed, retryable", append(attrs, slog.String("error", out.Err.Error()))...)
		if d, ok := bridge.RetryAfter(out.Err); ok {
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

// acceptedAnswer is the body of a 202, the answer to nearly every webhook:
// a struct, which encoding/json writes without the map's sorting of keys
// (the fields are in the order the map's keys came out).
type acceptedAnswer struct {
	Action    bridge.Action `json:"action"`
	ContactID string        `json:"contact_id"`
	EventID   int64         `json:"event_id"`
	Status    string        `json:"status"`
}

// fail answers a refusal with a JSON body that says what is wrong.
func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"status": "error", "error": msg})
}

// jsonBody reports whether the body should be read as HighLevel's JSON.
// An empty body is fine (everything may be in the query); a non-empty one
// must be JSON: HighLevel's Webhook action sends application/json, and a
// body of another type (a form, XML) would be silently ignored while the
// sender thinks it said something, so it is refused (415).
func jsonBody(r *http.Request, body []byte) (bool, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/plain") {
		return true, nil
	}
	return false, errors.New("the body must be HighLevel's JSON webhook (Content-Type: application/json), or empty with everything in the URL")
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
