package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The states of a stored event.
const (
	StatusQueued  = "queued"  // accepted, not yet applied (or being retried)
	StatusDone    = "done"    // applied
	StatusRefused = "refused" // refused by rule; retrying will not help
	StatusFailed  = "failed"  // failed for good, or gave up after its retries
)

// ErrNoEvent is returned for an unknown event id.
var ErrNoEvent = errors.New("no such event")

// NotRetryableError is Retry's answer for an event that is queued or done.
type NotRetryableError struct {
	ID     int64
	Status string
}

func (e *NotRetryableError) Error() string {
	return fmt.Sprintf("event %d is %s; only failed or refused events are retried", e.ID, e.Status)
}

// Event is one accepted webhook as the store keeps it.
type Event struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	ContactID  string    `json:"contact_id"`
	Action     Action    `json:"action"`
	Status     string    `json:"status"`
	Attempts   int       `json:"attempts"`
	Result     *Result   `json:"result,omitempty"`
	Error      string    `json:"error,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// EventFilter selects events for Events.
type EventFilter struct {
	// Failed keeps only failed and refused events.
	Failed bool
	// Status keeps only events in this state; "" for all.
	Status string
	// ContactID keeps only the events of this HighLevel contact; "" for all.
	ContactID string
	// Limit bounds the answer, newest first; 100 when zero.
	Limit int
}

// Events is the operator's view of the stored events, which the admin API
// shows; the durable queue has it. An unknown id is ErrNoEvent; retrying
// an event that is queued or done is a *NotRetryableError.
type Events interface {
	// Events lists stored events, newest first.
	Events(ctx context.Context, f EventFilter) ([]Event, error)
	// Event returns one stored event.
	Event(ctx context.Context, id int64) (*Event, error)
	// Retry queues a failed or refused event again.
	Retry(ctx context.Context, id int64) error
	// RetryFailed queues every failed or refused event again and returns their ids.
	RetryFailed(ctx context.Context) ([]int64, error)
}
