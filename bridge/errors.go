package bridge

import (
	"errors"
	"fmt"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// ErrRefused marks a request that the bridge will not carry out by rule
// (an administrator, a role outside the allowed list, an update for a
// contact that has no user, a contact without an email). Trying again
// will not change the answer.
var ErrRefused = errors.New("refused")

// RefusedError says why a request was refused. It matches ErrRefused.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string        { return "refused: " + e.Reason }
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Retryable reports whether a failed sync is worth trying again later: the
// site or HighLevel was down, slow, overloaded or rate limiting. Refusals
// and other 4xx answers are final.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrRefused) {
		return false
	}
	return wordpress.Retryable(err) || highlevel.Retryable(err)
}

// RetryAfter returns the wait that WordPress or HighLevel asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	if d, ok := highlevel.RetryAfter(err); ok {
		return d, true
	}
	return wordpress.RetryAfter(err)
}
