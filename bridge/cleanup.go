package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// cleanupArgs is the periodic job that forgets what is no longer needed:
// delivery fingerprints past the dedupe window, and finished events older
// than the retention. Queued events are never removed.
type cleanupArgs struct{}

func (cleanupArgs) Kind() string { return "hlbridge_cleanup" }

// cleanupInterval is how often the cleanup runs (on one process: River's
// periodic jobs run on the elected leader).
const cleanupInterval = 10 * time.Minute

type cleanupWorker struct {
	river.WorkerDefaults[cleanupArgs]
	q *Queue
}

func (w *cleanupWorker) Work(ctx context.Context, _ *river.Job[cleanupArgs]) error {
	deliveries, events, err := w.q.Cleanup(ctx, time.Now())
	if err != nil {
		return err
	}
	w.q.cfg.Logger.Debug("cleanup", slog.Int64("deliveries", deliveries), slog.Int64("events", events))
	return nil
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
		StatusQueued, now.Add(-q.cfg.EventRetention).UnixMilli())
	if err != nil {
		return deliveries, 0, fmt.Errorf("clean events: %w", err)
	}
	events, _ = res.RowsAffected()
	return deliveries, events, nil
}
