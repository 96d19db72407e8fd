package bridge

import (
	"context"
	"database/sql"
	"encoding/json"
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
	request    string
}

// outcome is the event seen as the Dispatcher's answer.
func (e *Event) outcome() Outcome {
	o := Outcome{Done: e.Status != StatusQueued, EventID: e.ID}
	if e.Result != nil {
		o.Result = *e.Result
	}
	switch e.Status {
	case StatusRefused:
		o.Err = &RefusedError{Reason: e.Error}
	case StatusFailed:
		o.Err = errors.New(e.Error)
	}
	return o
}

const eventColumns = `id, received_at, contact_id, action, status, attempts, result, error, finished_at, request`

func scanEvent(row interface{ Scan(...any) error }) (*Event, error) {
	var e Event
	var received int64
	var result, errText sql.NullString
	var finished sql.NullInt64
	if err := row.Scan(&e.ID, &received, &e.ContactID, &e.Action, &e.Status, &e.Attempts, &result, &errText, &finished, &e.request); err != nil {
		return nil, err
	}
	e.ReceivedAt = time.UnixMilli(received).UTC()
	if finished.Valid {
		e.FinishedAt = time.UnixMilli(finished.Int64).UTC()
	}
	e.Error = errText.String
	if result.Valid {
		var r Result
		if json.Unmarshal([]byte(result.String), &r) == nil {
			e.Result = &r
		}
	}
	return &e, nil
}

// Event returns one stored event.
func (q *Queue) Event(ctx context.Context, id int64) (*Event, error) {
	e, err := scanEvent(q.store.db.QueryRowContext(ctx, q.store.q(`SELECT `+eventColumns+` FROM hlbridge_event WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("event %d: %w", id, ErrNoEvent)
	}
	return e, err
}

// EventFilter selects events for Events.
type EventFilter struct {
	// Failed keeps only failed and refused events.
	Failed bool
	// Status keeps only events in this state; "" for all.
	Status string
	// Limit bounds the answer, newest first; 100 when zero.
	Limit int
}

// Events lists stored events, newest first.
func (q *Queue) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := "", []any{}
	switch {
	case f.Failed:
		where, args = ` WHERE status IN (?, ?)`, []any{StatusFailed, StatusRefused}
	case f.Status != "":
		where, args = ` WHERE status = ?`, []any{f.Status}
	}
	rows, err := q.store.db.QueryContext(ctx, q.store.q(`SELECT `+eventColumns+` FROM hlbridge_event`+where+` ORDER BY id DESC LIMIT ?`), append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// Retry queues a failed or refused event again, as if its webhook had just
// arrived (the sync reads the contact's current state). A queued or done
// event is left alone and reported with an error.
func (q *Queue) Retry(ctx context.Context, id int64) error {
	s := q.store
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	e, err := scanEvent(tx.QueryRowContext(ctx, s.q(`SELECT `+eventColumns+` FROM hlbridge_event WHERE id = ?`+s.forUpdate()), id))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("event %d: %w", id, ErrNoEvent)
	}
	if err != nil {
		return err
	}
	if e.Status != StatusFailed && e.Status != StatusRefused {
		return &NotRetryableError{ID: id, Status: e.Status}
	}
	var req Request
	if err := json.Unmarshal([]byte(e.request), &req); err != nil {
		return fmt.Errorf("event %d: stored request unreadable: %w", id, err)
	}
	st, err := q.prepareAccept(ctx, tx)
	if err != nil {
		return err
	}
	seq, err := q.enqueueTx(ctx, tx, st, req)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE hlbridge_event SET status = ?, seq = ?, result = NULL, error = NULL, finished_at = NULL WHERE id = ?`),
		StatusQueued, seq, id); err != nil {
		return fmt.Errorf("requeue event %d: %w", id, err)
	}
	return tx.Commit()
}

// RetryFailed queues every failed or refused event again and returns their ids.
func (q *Queue) RetryFailed(ctx context.Context) ([]int64, error) {
	var ids []int64
	for {
		evs, err := q.Events(ctx, EventFilter{Failed: true, Limit: 500})
		if err != nil {
			return ids, err
		}
		if len(evs) == 0 {
			return ids, nil
		}
		for _, e := range evs {
			if err := q.Retry(ctx, e.ID); err != nil {
				return ids, err
			}
			ids = append(ids, e.ID)
		}
	}
}
