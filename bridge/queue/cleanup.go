package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/hlbridge/hlbridge/bridge"
)

// cleanupArgs is the periodic job that keeps the store in order: it makes
// sure every contact with waiting work has a job (see Reconcile), and it
// forgets delivery fingerprints past the dedupe window and finished events
// older than the retention. Queued events are never removed.
type cleanupArgs struct{}

func (cleanupArgs) Kind() string { return "hlbridge_cleanup" }

// cleanupInterval is how often the cleanup runs (on one process: River's
// periodic jobs run on the elected leader).
const cleanupInterval = time.Minute

type cleanupWorker struct {
	river.WorkerDefaults[cleanupArgs]
	q *Queue
}

func (w *cleanupWorker) Work(ctx context.Context, _ *river.Job[cleanupArgs]) error {
	jobs, err := w.q.Reconcile(ctx)
	if err != nil {
		return err
	}
	deliveries, events, err := w.q.Cleanup(ctx, time.Now())
	if err != nil {
		return err
	}
	w.q.cfg.Logger.Debug("cleanup", slog.Int("jobs_restored", jobs), slog.Int64("deliveries", deliveries), slog.Int64("events", events))
	return nil
}

// Reconcile inserts a job for every contact with waiting work but without
// a job that is not final, and says how many were missing. Normally there
// is nothing to do: the intake inserts a job with the first pending
// request, and only a job River gave up on without our worker (a crash on
// its last attempt) could leave work without one. The contacts that have
// a job are left out by the query, not by an insert that River skips as a
// duplicate: with a backlog (a storm that the workers are still draining)
// that was a transaction per waiting contact every minute, each holding
// SQLite's one connection against the intake. Jobs are unique per contact,
// so a job that appears meanwhile is still not doubled.
func (q *Queue) Reconcile(ctx context.Context) (int, error) {
	s := q.store
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT contact_id FROM hlbridge_contact
		WHERE (pending IS NOT NULL OR inflight IS NOT NULL)
		AND contact_id NOT IN (SELECT `+s.jobContact()+` FROM river_job WHERE kind = ?
			AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled')
			AND `+s.jobContact()+` IS NOT NULL)`), (syncContactArgs{}).Kind())
	if err != nil {
		return 0, fmt.Errorf("find waiting contacts: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	restored := 0
	for _, id := range ids {
		res, err := q.client.Insert(ctx, syncContactArgs{ContactID: id}, nil)
		if err != nil {
			return restored, fmt.Errorf("restore job of contact %s: %w", id, err)
		}
		if !res.UniqueSkippedAsDuplicate {
			restored++
			q.cfg.Logger.Warn("restored a missing job", slog.String("contact_id", id))
		}
	}
	return restored, nil
}

// Cleanup deletes the delivery fingerprints that expired before now and
// the finished events older than the retention, and says how many.
func (q *Queue) Cleanup(ctx context.Context, now time.Time) (deliveries, events int64, err error) {
	s := q.store
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM hlbridge_delivery WHERE expires_at < ?`), now.UnixMilli())
	if err != nil {
		return 0, 0, fmt.Errorf("clean deliveries: %w", err)
	}
	deliveries, _ = res.RowsAffected()
	res, err = s.db.ExecContext(ctx, s.q(`DELETE FROM hlbridge_event WHERE status <> ? AND finished_at < ?`),
		bridge.StatusQueued, now.Add(-q.cfg.EventRetention).UnixMilli())
	if err != nil {
		return deliveries, 0, fmt.Errorf("clean events: %w", err)
	}
	events, _ = res.RowsAffected()
	if s.postgres {
		// Leases of processes long gone (see recovery.go).
		if _, err := s.db.ExecContext(ctx, `DELETE FROM hlbridge_process WHERE expires_at < now() - interval '1 hour'`); err != nil {
			return deliveries, events, fmt.Errorf("clean leases: %w", err)
		}
	}
	return deliveries, events, nil
}
