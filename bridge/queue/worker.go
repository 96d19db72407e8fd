package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/wordpress"
)

// syncWorker runs a contact's coalesced request against WordPress.
type syncWorker struct {
	river.WorkerDefaults[syncContactArgs]
	q *Queue
}

// Work claims what is pending for the contact, applies it, and records the
// outcome on every event it covered. Webhooks that arrive meanwhile are
// left pending, and the job snoozes to run once more for them.
func (w *syncWorker) Work(ctx context.Context, job *river.Job[syncContactArgs]) error {
	q := w.q
	contactID := job.Args.ContactID
	ctx, release := q.lease.hold(ctx)
	defer release()
	req, claimedSeq, err := q.claim(ctx, job)
	if errors.Is(err, errNotOwner) {
		return q.giveUp(contactID, err)
	}
	if err != nil || req == nil {
		return err
	}
	log := q.cfg.Logger.With(slog.String("contact_id", contactID), slog.String("action", string(req.Action)),
		slog.Int("attempt", job.Attempt))
	start := time.Now()
	res, err := q.syncer.Apply(ctx, *req)
	took := time.Since(start)

	var status, errText string
	switch {
	case err == nil:
		status = bridge.StatusDone
		log.Info("synced", slog.Int64("user_id", res.UserID), slog.Bool("created", res.Created), slog.Any("changed", res.Changed))
		if q.outage.CompareAndSwap(true, false) {
			// The site is back: the syncs waiting out its outage need not.
			if _, err := q.BringForward(context.WithoutCancel(ctx)); err != nil {
				log.Warn("could not bring retries forward", slog.String("error", err.Error()))
			}
		}
	case leaseLost(ctx, err):
		// Not a failure: the events stay queued for whichever process
		// holds the job now.
		q.cfg.Metrics.Sync("snoozed", took)
		return q.giveUp(contactID, errLeaseLost)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Shutting down: run again after the next start, no attempt spent.
		q.cfg.Metrics.Sync("snoozed", took)
		return river.JobSnooze(0)
	case errors.Is(err, bridge.ErrRefused):
		status, errText = bridge.StatusRefused, refusalReason(err)
		log.Warn("refused", slog.String("reason", errText))
	case bridge.Retryable(err):
		if wait, ok := bridge.RetryAfter(err); ok {
			log.Warn("rate limited, snoozing", slog.Duration("wait", wait))
			q.noteError(ctx, contactID, claimedSeq, "waiting: "+err.Error())
			q.cfg.Metrics.Sync("snoozed", took)
			return river.JobSnooze(wait) // costs no attempt
		}
		if outage(err) {
			q.outage.Store(true)
		}
		if job.Attempt < job.MaxAttempts {
			log.Warn("sync failed, will retry", slog.String("error", err.Error()))
			q.noteError(ctx, contactID, claimedSeq, err.Error())
			q.cfg.Metrics.Sync("retry", took)
			return err
		}
		status, errText = bridge.StatusFailed, fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, err)
		log.Error("sync failed for good", slog.String("error", errText))
	default:
		status, errText = bridge.StatusFailed, err.Error()
		log.Error("sync failed", slog.String("error", errText))
	}
	q.cfg.Metrics.Sync(status, took)
	err = q.finish(ctx, job, status, res, errText, err == nil)
	if errors.Is(err, errNotOwner) {
		return q.giveUp(contactID, err)
	}
	return err
}

// giveUp leaves a job this process no longer owns, writing nothing. The
// snooze costs no attempt, and River applies it only if the job is still
// running here: a job handed to another process is no longer.
func (q *Queue) giveUp(contactID string, why error) error {
	q.cfg.Logger.Warn("sync abandoned: another process has its job", slog.String("contact_id", contactID),
		slog.String("reason", why.Error()))
	return river.JobSnooze(0)
}

// outage reports whether err says WordPress could not be reached or was
// down (not a failure of one request), the kind that ends for every sync
// at once when the site is back.
func outage(err error) bool {
	var we *wordpress.Error
	if errors.As(err, &we) {
		return we.Status == 0 || we.Status == http.StatusBadGateway || we.Status == http.StatusServiceUnavailable ||
			we.Status == http.StatusGatewayTimeout
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// refusalReason is the reason of a refusal, for the operator.
func refusalReason(err error) string {
	var r *bridge.RefusedError
	if errors.As(err, &r) {
		return r.Reason
	}
	return err.Error()
}

// claim moves the contact's pending request into flight, merged with what
// a failed earlier attempt left there, and returns it with the sequence
// number it covers. With nothing to do it completes the job and returns nil.
func (q *Queue) claim(ctx context.Context, job *river.Job[syncContactArgs]) (*bridge.Request, int64, error) {
	s := q.store
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("begin claim: %w", err)
	}
	defer tx.Rollback()
	if err := q.ownedTx(ctx, tx, job.ID, job.Attempt); err != nil {
		return nil, 0, err
	}
	var seq int64
	var pending, inflight, latest sql.NullString
	err = tx.QueryRowContext(ctx, s.q(`SELECT seq, pending, inflight, latest FROM hlbridge_contact WHERE contact_id = ?`+s.forUpdate()),
		job.Args.ContactID).Scan(&seq, &pending, &inflight, &latest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("read contact: %w", err)
	}
	req := bridge.Merge(decodeRequest(inflight), decodeRequest(pending))
	if req != nil {
		// In payload mode the sync applies the contact's newest known state.
		if c := decodeContact(latest); c != nil {
			req.Contact = c
		}
	}
	if req == nil {
		if err := q.complete(ctx, tx, job); err != nil {
			return nil, 0, fmt.Errorf("complete empty job: %w", err)
		}
		return nil, 0, tx.Commit()
	}
	reqJSON, _ := json.Marshal(req)
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE hlbridge_contact SET inflight = ?, inflight_seq = ?, pending = NULL WHERE contact_id = ?`),
		string(reqJSON), seq, job.Args.ContactID); err != nil {
		return nil, 0, fmt.Errorf("claim contact: %w", err)
	}
	// River's count: a snooze (rate limit, a rerun for newer webhooks)
	// spends no attempt.
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE hlbridge_event SET attempts = ? WHERE contact_id = ? AND status = ? AND seq <= ?`),
		job.Attempt, job.Args.ContactID, bridge.StatusQueued, seq); err != nil {
		return nil, 0, fmt.Errorf("count attempt: %w", err)
	}
	return req, seq, tx.Commit()
}

// finish records the outcome on the events the run covered. If webhooks
// arrived during the run, the job snoozes to run again for them; otherwise
// it completes in the same transaction, so a webhook committed after it
// finds no job and inserts a new one.
func (q *Queue) finish(ctx context.Context, job *river.Job[syncContactArgs], status string, res bridge.Result, errText string, ok bool) error {
	s := q.store
	// Record the outcome even if the job's context ran out meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin finish: %w", err)
	}
	defer tx.Rollback()
	if err := q.ownedTx(ctx, tx, job.ID, job.Attempt); err != nil {
		return err
	}
	var pending sql.NullString
	var inflightSeq sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT pending, inflight_seq FROM hlbridge_contact WHERE contact_id = ?`+s.forUpdate()),
		job.Args.ContactID).Scan(&pending, &inflightSeq); err != nil {
		return fmt.Errorf("read contact: %w", err)
	}
	var result sql.NullString
	if ok {
		b, _ := json.Marshal(res)
		result = sql.NullString{String: string(b), Valid: true}
	}
	errCol := sql.NullString{String: errText, Valid: errText != ""}
	rows, err := tx.QueryContext(ctx, s.q(`UPDATE hlbridge_event SET status = ?, result = ?, error = ?, finished_at = ?
		WHERE contact_id = ? AND status = ? AND seq <= ? RETURNING id`),
		status, result, errCol, time.Now().UnixMilli(), job.Args.ContactID, bridge.StatusQueued, inflightSeq.Int64)
	if err != nil {
		return fmt.Errorf("record outcome: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE hlbridge_contact SET inflight = NULL, inflight_seq = NULL WHERE contact_id = ?`),
		job.Args.ContactID); err != nil {
		return fmt.Errorf("clear contact: %w", err)
	}
	more := pending.Valid && pending.String != ""
	if !more {
		if err := q.complete(ctx, tx, job); err != nil {
			return fmt.Errorf("complete job: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit outcome: %w", err)
	}
	q.waiters.done(ids)
	if more {
		return river.JobSnooze(0)
	}
	return nil
}

// noteError keeps the latest retryable error on the events still waiting,
// so an operator sees why they wait.
func (q *Queue) noteError(ctx context.Context, contactID string, seq int64, msg string) {
	if bridge.WriteFenceErr(ctx) != nil {
		return // the job may be another process's now
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := q.store.db.ExecContext(ctx, q.store.q(`UPDATE hlbridge_event SET error = ? WHERE contact_id = ? AND status = ? AND seq <= ?`),
		msg, contactID, bridge.StatusQueued, seq); err != nil {
		q.cfg.Logger.Warn("could not note error on events", slog.String("error", err.Error()))
	}
}
