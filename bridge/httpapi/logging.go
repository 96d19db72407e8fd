package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// logRequests logs one line per request, with every secret-looking query
// parameter (access_key above all) redacted. Bodies and headers are never
// logged.
func (s *Server) logRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		s.logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("query", RedactQuery(c.Request.URL.RawQuery)),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", c.ClientIP()))
	}
}

// recoverPanics turns a panic into a 500 without logging the request (which
// may hold secrets) and keeps the server running.
func (s *Server) recoverPanics() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				s.logger.Error("panic in handler", slog.String("panic", fmt.Sprint(v)),
					slog.String("path", c.Request.URL.Path), slog.String("stack", string(debug.Stack())))
				fail(c, http.StatusInternalServerError, "internal error")
			}
		}()
		c.Next()
	}
}

// secretParams are query parameters whose values never reach a log line.
var secretParams = []string{"key", "token", "secret", "pass", "auth", "signature", "sig"}

// RedactQuery returns a raw query string with the values of secret-looking
// parameters (access_key, token, password, ...) replaced by "REDACTED",
// the rest as sent. A query that does not parse (a bad %-escape, a ";") is
// dropped whole. It runs on every request's log line, so it scans the raw
// query rather than building url.Values.
func RedactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	if strings.Contains(raw, ";") {
		return "(unparsable query)"
	}
	var b strings.Builder
	rest := raw
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return "(unparsable query)"
		}
		if _, err := url.QueryUnescape(rawValue); err != nil {
			return "(unparsable query)"
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		if secretParam(name) {
			b.WriteString(url.QueryEscape(name))
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(pair)
	}
	return b.String()
}

// secretParam reports whether a parameter's name looks like a secret's.
func secretParam(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}
