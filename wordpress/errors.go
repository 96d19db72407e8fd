package wordpress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"
)

// Errors that callers test for with errors.Is. An *Error returned by the
// client matches the one that fits its WordPress error code or HTTP status.
var (
	// ErrNotFound: the user (or route) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateEmail: another user already has this email. WordPress
	// answers 500 existing_user_email on create; this is how a concurrent
	// create of the same person shows up.
	ErrDuplicateEmail = errors.New("email already used by another user")
	// ErrDuplicateLogin: another user already has this login (500
	// existing_user_login on create).
	ErrDuplicateLogin = errors.New("login already used by another user")
	// ErrInvalidEmail: WordPress refused the email address. On update
	// WordPress uses the same code for a malformed address and for one that
	// belongs to another user; callers that need to know look the email up.
	ErrInvalidEmail = errors.New("email address refused")
	// ErrInvalidUsername: WordPress refused the login (characters, length).
	ErrInvalidUsername = errors.New("username refused")
	// ErrInvalidRole: the role does not exist on the site, or may not be given.
	ErrInvalidRole = errors.New("role refused")
	// ErrUnauthorized: WordPress did not accept the credentials (401).
	ErrUnauthorized = errors.New("not authenticated")
	// ErrForbidden: authenticated, but the user lacks the capability (403).
	ErrForbidden = errors.New("not allowed")
	// ErrProtectedMeta: the companion plugin refused a protected meta key
	// (one starting with "_" or the table prefix, capabilities, ...).
	ErrProtectedMeta = errors.New("protected meta key")
	// ErrCompanionMissing: the hlbridge companion plugin is not installed on
	// the site (its REST routes do not exist).
	ErrCompanionMissing = errors.New("hlbridge companion plugin not installed")
	// ErrNotWordPress: the URL does not serve the WordPress REST API.
	ErrNotWordPress = errors.New("no WordPress REST API at this URL")
)

// Error is a failed call to WordPress: either an answer with an error status
// (Status and Code set, from WordPress's {"code","message","data"} body) or a
// transport failure (Err set, Status 0). It never holds a credential.
type Error struct {
	Op      string   // what the client was doing, e.g. "create user"
	Status  int      // HTTP status, 0 for a transport failure
	Code    string   // WordPress error code, e.g. "existing_user_email"
	Message string   // WordPress's message, HTML stripped
	Params  []string // for rest_invalid_param: the parameters refused
	// DetailCodes are the error codes behind a rest_invalid_param, e.g.
	// the companion's hlbridge_protected_meta_key for hlbridge_meta.
	DetailCodes []string
	RetryAfter  time.Duration // from a Retry-After header, 0 when absent
	Err         error         // transport failure or decoding error
}

func (e *Error) Error() string {
	switch {
	case e.Status == 0 && e.Err != nil:
		return fmt.Sprintf("wordpress: %s: %v", e.Op, e.Err)
	case e.Code != "":
		return fmt.Sprintf("wordpress: %s: %d %s: %s", e.Op, e.Status, e.Code, e.Message)
	case e.Err != nil:
		return fmt.Sprintf("wordpress: %s: HTTP %d: %v", e.Op, e.Status, e.Err)
	case e.Message != "":
		return fmt.Sprintf("wordpress: %s: HTTP %d: %s", e.Op, e.Status, e.Message)
	default:
		return fmt.Sprintf("wordpress: %s: HTTP %d", e.Op, e.Status)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps WordPress's error codes and statuses to the package's sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrDuplicateEmail:
		return e.Code == "existing_user_email"
	case ErrDuplicateLogin:
		return e.Code == "existing_user_login"
	case ErrInvalidEmail:
		return e.Code == "rest_user_invalid_email" || e.Code == "rest_invalid_param" && slices.Contains(e.Params, "email")
	case ErrInvalidUsername:
		return e.Code == "rest_user_invalid_username" || e.Code == "user_login_too_long" || e.Code == "invalid_username" ||
			e.Code == "rest_invalid_param" && slices.Contains(e.Params, "username")
	case ErrInvalidRole:
		return e.Code == "rest_user_invalid_role"
	case ErrNotFound:
		return e.Status == http.StatusNotFound && e.Code != "rest_no_route" || e.Code == "rest_user_invalid_id"
	case ErrCompanionMissing:
		return e.Code == "rest_no_route"
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrProtectedMeta:
		return e.Code == "hlbridge_protected_meta_key" || slices.Contains(e.DetailCodes, "hlbridge_protected_meta_key")
	}
	return false
}

// Retryable reports whether err is worth trying again later unchanged: a
// transport failure or time-out, a 429, or a 5xx other than WordPress's
// duplicate-user answers (which are final, and mean "look the user up").
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var we *Error
	if errors.As(err, &we) {
		switch {
		case we.Status == 0:
			return true // transport failure: refused, reset, time-out
		case we.Status == http.StatusTooManyRequests, we.Status == http.StatusRequestTimeout:
			return true
		case we.Status >= 500:
			return we.Code != "existing_user_email" && we.Code != "existing_user_login"
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// RetryAfter returns the wait WordPress (or a proxy in front of it) asked
// for with a Retry-After header, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var we *Error
	if errors.As(err, &we) && we.RetryAfter > 0 {
		return we.RetryAfter, true
	}
	return 0, false
}
