package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
)

// storedEvent is an event with the request it keeps (the action and its
// options, see eventRequest), which a retry queues again.
type storedEvent struct {
	bridge.Event
	request string
}

// outcome is the event seen as the Dispatcher's answer.
func (e *storedEvent) outcome() bridge.Outcome {
	o := bridge.Outcome{Done: e.Status != bridge.StatusQueued, EventID: e.ID}
	if e.Result != nil {
		o.Result = *e.Result
	}
	switch e.Status {
	case bridge.StatusRefused:
		o.Err = &bridge.RefusedError{Reason: e.Error}
	case bridge.StatusFailed:
		o.Err = errors.New(e.Error)
	}
	return o
}

const eventColumns = `id, received_at, contact_id, action, status, attempts, result, error, finished_at, request`

func scanEvent(row interface{ Scan(...any) error }) (*storedEvent, error) {
	var e storedEvent
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
		var r bridge.Result
		if json.Unmarshal([]byte(result.String), &r) == nil {
			e.Result = &r
		}
	}
	return &e, nil
}

// Event returns one stored event.
func (q *Queue) Event(ctx context.Context, id int64) (*bridge.Event, error) {
	e, err := q.event(ctx, id)
	if err != nil {
		return nil, err
	}
	return &e.Event, nil
}

// event returns one stored event with its request.
func (q *Queue) event(ctx context.Context, id int64) (*storedEvent, error) {
	e, err := scanEvent(q.store.db.QueryRowContext(ctx, q.store.q(`SELECT `+eventColumns+` FROM hlbridge_event WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("event %d: %w", id, bridge.ErrNoEvent)
	}
	return e, err
}

// Events lists stored events, newest first.
func (q *Queue) Events(ctx context.Context, f bridge.EventFilter) ([]bridge.Event, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := "", []any{}
	and := func(cond string, vals ...any) {
		if where == "" {
			where = ` WHERE ` + cond
		} else {
			where += ` AND ` + cond
		}
		args = append(args, vals...)
	}
	switch {
	case f.Failed:
		and(`status IN (?, ?)`, bridge.StatusFailed, bridge.StatusRefused)
	case f.Status != "":
		and(`status = ?`, f.Status)
	}
	if f.ContactID != "" {
		and(`contact_id = ?`, f.ContactID)
	}
	rows, err := q.store.db.QueryContext(ctx, q.store.q(`SELECT `+eventColumns+` FROM hlbridge_event`+where+` ORDER BY id DESC LIMIT ?`), append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []bridge.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e.Event)
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
		return fmt.Errorf("event %d: %w", id, bridge.ErrNoEvent)
	}
	if err != nil {
		return err
	}
	if e.Status != bridge.StatusFailed && e.Status != bridge.StatusRefused {
		return &bridge.NotRetryableError{ID: id, Status: e.Status}
	}
	var req bridge.Request
	if err := json.Unmarshal([]byte(e.request), &req); err != nil {
		return fmt.Errorf("event %d: stored request unreadable: %w", id, err)
	}
	cb := &contactBatch{q: q}
	if err := cb.lock(ctx, tx, []string{req.ContactID}); err != nil {
		return err
	}
	seq, err := cb.add(req, true) // an operator's retry: no burst to wait for
	if err != nil {
		return err
	}
	if err := cb.write(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE hlbridge_event SET status = ?, seq = ?, result = NULL, error = NULL, finished_at = NULL WHERE id = ?`),
		bridge.StatusQueued, seq, id); err != nil {
		return fmt.Errorf("requeue event %d: %w", id, err)
	}
	return tx.Commit()
}

// RetryFailed queues every failed or refused event again and returns their ids.
func (q *Queue) RetryFailed(ctx context.Context) ([]int64, error) {
	var ids []int64
	for {
		evs, err := q.Events(ctx, bridge.EventFilter{Failed: true, Limit: 500})
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
