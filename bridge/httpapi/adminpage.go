package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
)

// The events page: GET /admin shows recent events to an operator signed in
// with BRIDGE_ADMIN_TOKEN (or sending it as a bearer token), on any screen,
// from one server-rendered template with no script.
//
// Signing in sets a cookie that holds a session, never the token: an
// expiry, a random nonce and an HMAC of both keyed by the token, so that
// changing the token ends every session. The cookie is HttpOnly,
// SameSite=Strict, and Secure when the request came over TLS or through a
// trusted proxy (BRIDGE_TRUSTED_PROXIES) that says X-Forwarded-Proto:
// https. Forms that change something (retry, sign out) carry a CSRF token,
// an HMAC of the session, checked in constant time. Wrong tokens at sign-in
// count against the access-key failure limit.

//go:embed adminpage.html
var adminPageHTML string

var adminPage = template.Must(template.New("admin").Parse(adminPageHTML))

const (
	// sessionCookie names the events page's session cookie.
	sessionCookie = "hlbridge_admin"
	// sessionLifetime is how long a sign-in lasts.
	sessionLifetime = 12 * time.Hour
	// adminPageEvents is how many events the page shows, newest first.
	adminPageEvents = 100
)

// adminStatuses are the status filter's choices; "" is any.
var adminStatuses = []string{"", bridge.StatusFailed, bridge.StatusRefused, bridge.StatusQueued, bridge.StatusDone}

// pageEvent is one event as the page shows it.
type pageEvent struct {
	bridge.Event
	Received, ReceivedShort string
	UserID                  int64
	UserURL                 string // the user's edit screen in wp-admin
	Retryable               bool
}

// pageData is what the template renders.
type pageData struct {
	Login    bool // the sign-in form instead of the events
	Message  string
	CSRF     string // "" when signed in with a bearer token (no cookie to forge)
	Contact  string
	Status   string
	Statuses []string
	Events   []pageEvent
}

// mac is the HMAC-SHA256, keyed by the admin token, of a purpose and a value.
func (s *Server) mac(purpose, value string) string {
	h := hmac.New(sha256.New, []byte(s.cfg.AdminToken))
	h.Write([]byte("hlbridge admin " + purpose + "\x00" + value))
	return hex.EncodeToString(h.Sum(nil))
}

// newSession returns a session cookie's value: expiry.nonce.mac.
func (s *Server) newSession(now time.Time) string {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	body := strconv.FormatInt(now.Add(sessionLifetime).Unix(), 10) + "." + hex.EncodeToString(nonce)
	return body + "." + s.mac("session", body)
}

// validSession reports whether v is an unexpired session this token made.
func (s *Server) validSession(v string, now time.Time) bool {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return false
	}
	body, sum := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sum), []byte(s.mac("session", body))) {
		return false
	}
	exp, err := strconv.ParseInt(body[:max(0, strings.IndexByte(body, '.'))], 10, 64)
	return err == nil && now.Unix() < exp
}

// pageAuth says how the request is signed in: with a valid session cookie
// (returned, for its CSRF token), or with the bearer token (session "").
// A wrong bearer token counts as a failure and is answered; ok is false
// then, and also when the request is not signed in at all (not answered).
func (s *Server) pageAuth(c *gin.Context) (session string, ok, answered bool) {
	if h := c.GetHeader("Authorization"); h != "" {
		token, isBearer := strings.CutPrefix(h, "Bearer ")
		if !isBearer || !secretMatches(strings.TrimSpace(token), s.adminHash) || len(c.Request.Header.Values("Authorization")) > 1 {
			s.keyFailed(c, surfaceAdmin, http.StatusUnauthorized, "Authorization: Bearer <BRIDGE_ADMIN_TOKEN> is missing or wrong")
			return "", false, true
		}
		return "", true, false
	}
	if v, err := c.Cookie(sessionCookie); err == nil && s.validSession(v, time.Now()) {
		return v, true, false
	}
	return "", false, false
}

// csrfOK checks a form's CSRF token against the session, in constant time.
// A request signed in with the bearer token needs none: a browser cannot
// be made to send that header.
func (s *Server) csrfOK(c *gin.Context, session string) bool {
	if session == "" {
		return true
	}
	want := s.mac("csrf", session)
	return subtle.ConstantTimeCompare([]byte(c.PostForm("csrf")), []byte(want)) == 1
}

// secureRequest reports whether the browser reached us over https: TLS
// here, or a trusted proxy's X-Forwarded-Proto.
func (s *Server) secureRequest(c *gin.Context) bool {
	if c.Request.TLS != nil {
		return true
	}
	if !strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https") {
		return false
	}
	ip := net.ParseIP(c.RemoteIP())
	for _, n := range s.trusted {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) setSessionCookie(c *gin.Context, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: value, Path: "/admin", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secureRequest(c), SameSite: http.SameSiteStrictMode})
}

// renderPage writes the page with headers that keep it out of caches and
// frames and allow it no script.
func (s *Server) renderPage(c *gin.Context, status int, d pageData) {
	var buf bytes.Buffer
	if err := adminPage.Execute(&buf, d); err != nil {
		s.logger.Error("render the events page", "error", err.Error())
		fail(c, http.StatusInternalServerError, "internal error")
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// handleAdminPage answers GET /admin?contact=ID&status=failed.
func (s *Server) handleAdminPage(c *gin.Context) {
	session, ok, answered := s.pageAuth(c)
	if answered {
		return
	}
	if !ok {
		s.renderPage(c, http.StatusOK, pageData{Login: true})
		return
	}
	msg := ""
	if id, err := strconv.ParseInt(c.Query("retried"), 10, 64); err == nil {
		msg = "Event " + strconv.FormatInt(id, 10) + " is queued again."
	}
	s.eventsPage(c, http.StatusOK, session, msg)
}

// eventsPage renders the events that the query's contact and status
// filters select, with msg on top.
func (s *Server) eventsPage(c *gin.Context, status int, session, msg string) {
	d := pageData{Contact: strings.TrimSpace(c.Query("contact")), Status: c.Query("status"), Statuses: adminStatuses, Message: msg}
	if session != "" {
		d.CSRF = s.mac("csrf", session)
	}
	f := bridge.EventFilter{ContactID: d.Contact, Limit: adminPageEvents}
	switch d.Status {
	case "", bridge.StatusQueued, bridge.StatusDone, bridge.StatusRefused, bridge.StatusFailed:
		f.Status = d.Status
	default:
		d.Status, d.Message = "", "Unknown status; showing all."
	}
	evs, err := s.events.Events(c, f)
	if err != nil {
		s.logger.Error("events page", "error", err.Error())
		d.Message = "The store did not answer; reload to try again."
		status = http.StatusServiceUnavailable
	}
	for _, e := range evs {
		pe := pageEvent{Event: e, Received: e.ReceivedAt.UTC().Format(time.RFC3339),
			ReceivedShort: e.ReceivedAt.UTC().Format("2006-01-02 15:04:05 UTC"),
			Retryable:     e.Status == bridge.StatusFailed || e.Status == bridge.StatusRefused}
		if e.Result != nil && e.Result.UserID != 0 {
			pe.UserID = e.Result.UserID
			pe.UserURL = s.userEditURL(e.Result.UserID)
		}
		d.Events = append(d.Events, pe)
	}
	s.renderPage(c, status, d)
}

// userEditURL is a WordPress user's edit screen, or "" without a site URL.
func (s *Server) userEditURL(id int64) string {
	if s.cfg.WordPressURL == "" {
		return ""
	}
	return strings.TrimRight(s.cfg.WordPressURL, "/") + "/wp-admin/user-edit.php?user_id=" + url.QueryEscape(strconv.FormatInt(id, 10))
}

// handleAdminLogin answers the sign-in form: a session cookie and back to
// the page, or the form again (401, or 429 once the address failed too often).
func (s *Server) handleAdminLogin(c *gin.Context) {
	if !secretMatches(c.PostForm("token"), s.adminHash) {
		limited, _ := s.authLimit.fail(c.ClientIP())
		status, msg := http.StatusUnauthorized, "That is not the admin token."
		if limited {
			status, msg = http.StatusTooManyRequests, "Too many failed attempts from this address; try again later."
		}
		s.metrics.AuthFailure(surfaceAdmin, status)
		s.renderPage(c, status, pageData{Login: true, Message: msg})
		return
	}
	s.setSessionCookie(c, s.newSession(time.Now()), int(sessionLifetime/time.Second))
	c.Redirect(http.StatusSeeOther, "/admin")
}

// handleAdminLogout ends the browser's session.
func (s *Server) handleAdminLogout(c *gin.Context) {
	session, ok, answered := s.pageAuth(c)
	if answered {
		return
	}
	if ok && !s.csrfOK(c, session) {
		s.renderPage(c, http.StatusForbidden, pageData{Login: true, Message: "The form expired; sign in again."})
		return
	}
	s.setSessionCookie(c, "", -1)
	c.Redirect(http.StatusSeeOther, "/admin")
}

// handleAdminRetry answers the page's retry button.
func (s *Server) handleAdminRetry(c *gin.Context) {
	session, ok, answered := s.pageAuth(c)
	switch {
	case answered:
		return
	case !ok:
		s.renderPage(c, http.StatusUnauthorized, pageData{Login: true, Message: "Sign in to retry events."})
		return
	case !s.csrfOK(c, session):
		s.renderPage(c, http.StatusForbidden, pageData{Login: true, Message: "The form expired; reload the page and try again."})
		return
	}
	id, err := strconv.ParseInt(c.PostForm("id"), 10, 64)
	if err != nil || id < 1 {
		fail(c, http.StatusBadRequest, "the event id must be a positive number")
		return
	}
	if err := s.events.Retry(c, id); err != nil {
		var notRetryable *bridge.NotRetryableError
		if errors.Is(err, bridge.ErrNoEvent) || errors.As(err, &notRetryable) {
			s.eventsPage(c, http.StatusConflict, session, err.Error()+".")
			return
		}
		s.adminError(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin?retried="+strconv.FormatInt(id, 10))
}
