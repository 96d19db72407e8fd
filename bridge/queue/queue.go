// Package queue is hlbridge's durable delivery: it commits each webhook's
// request to a store (SQLite, or PostgreSQL shared by several processes)
// before the intake answers, and syncs each contact in River workers with
// retries, coalescing, one sync per contact at a time, and the take-over of
// a dead process's jobs. Its Queue is the bridge.Dispatcher and the
// bridge.Events of the product; it knows nothing of HTTP.
package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/highlevel"
)

// Config tunes the durable queue. Zero values take the defaults.
type Config struct {
	// Workers is how many contacts are synced at once by this process, and
	// so the most requests it sends WordPress at once (the WordPress
	// client's pace may allow fewer). Default 4.
	Workers int
	// JobTimeout bounds one sync. Default 2 minutes.
	JobTimeout time.Duration
	// RescueAfter is how long a sync may look running before River's
	// rescuer takes it over: a last resort, since a dead process's jobs are
	// taken over at start-up (SQLite) or by its lease (PostgreSQL), within
	// seconds. Default JobTimeout + 1 minute.
	RescueAfter time.Duration
	// MaxAttempts bounds the retries of a sync that keeps failing for a
	// retryable reason. With the default RetryBase, the default of 60 keeps
	// trying for about 25 hours.
	MaxAttempts int
	// RetryBase is the first retry's delay; each retry doubles it, up to
	// 30 minutes, with ±25% jitter. Default 2 seconds.
	RetryBase time.Duration
	// DedupeWindow is how long an app event's webhookId is remembered, so
	// that HighLevel's retry of it is recognised. Workflow webhooks are
	// never deduplicated. Default 10 minutes.
	DedupeWindow time.Duration
	// EventRetention is how long finished events are kept for the
	// operator; queued ones are kept until they finish. Default 30 days.
	EventRetention time.Duration
	// SyncWait bounds how long a sync=true webhook waits for its outcome
	// before it is answered 202. Default 10 seconds.
	SyncWait time.Duration
	// SettleWindow is how long a contact's webhooks must pause before its
	// sync may start, so that the burst of a bulk edit collapses into one
	// sync: a sync starts a window after the first of its waiting webhooks,
	// and each webhook that coalesces into it moves it to a window after
	// that one, but never later than 10 windows after the first. A
	// sync=true webhook (Delivery.Wait) starts it at once. Unlike the other
	// fields, zero means none: no window.
	SettleWindow time.Duration
	// PollInterval is how often idle workers look for new jobs when the
	// database cannot notify them, and so how late past its settle window
	// a sync may start. Default 50 ms: on an idle SQLite store that is 20
	// cheap queries a second.
	PollInterval time.Duration
	// Logger receives the queue's and River's log; nil discards. River's
	// Info records (routine: job counts every 5 s) are logged at Debug.
	Logger *slog.Logger
	// Metrics records syncs and exports the queue's depth; nil: none.
	Metrics *metrics.Metrics
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 2 * time.Minute
	}
	if c.RescueAfter <= c.JobTimeout {
		c.RescueAfter = c.JobTimeout + time.Minute
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 60
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 2 * time.Second
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 10 * time.Minute
	}
	if c.EventRetention <= 0 {
		c.EventRetention = 30 * 24 * time.Hour
	}
	if c.SyncWait <= 0 {
		c.SyncWait = 10 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// syncContactArgs is the River job that syncs one contact. Its uniqueness
// over every state but the final ones means at most one job per contact
// exists at a time, in every process sharing the store: two webhooks for a
// contact can never run at once. What a job applies is not in its args but
// in the contact's row, where waiting webhooks coalesce.
type syncContactArgs struct {
	ContactID string `json:"contact_id"`
}

func (syncContactArgs) Kind() string { return syncKind }

// syncKind is the River kind of the sync job.
const syncKind = "hlbridge_sync_contact"

// Hooks make a sync inserted to wait out the settle window 'available',
// due at its scheduled_at, rather than 'scheduled'. River's scheduler
// makes 'scheduled' jobs available only every 5 s (not configurable),
// which would stretch a 1 s window to up to 6; an 'available' job whose
// scheduled_at lies ahead is not fetched before that time either (River's
// fetch checks both), so it runs when its window ends. The state is not
// part of River's unique key, and both states are among the unique ones.
// A job snoozed for a Retry-After is 'scheduled' by an update, not an
// insert, and keeps its state.
func (syncContactArgs) Hooks() []rivertype.Hook {
	return []rivertype.Hook{river.HookInsertBeginFunc(func(_ context.Context, p *rivertype.JobInsertParams) error {
		if p.State == rivertype.JobStateScheduled {
			p.State = rivertype.JobStateAvailable
		}
		return nil
	})}
}

func (syncContactArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}}}
}

// Queue is the durable Dispatcher: it commits each webhook to the store
// before the intake answers, and syncs contacts in River workers, with
// retries, coalescing and one sync per contact at a time.
type Queue struct {
	cfg      Config
	store    *Store
	syncer   *bridge.Syncer
	client   *river.Client[*sql.Tx]
	complete func(ctx context.Context, tx *sql.Tx, job *river.Job[syncContactArgs]) error
	waiters  waiters
	intake   []*batcher // lanes; a contact always uses the same one

	sql *intakeSQL // the intake's SQL in the store's dialect

	clientID             string      // River's client id, in river_job.attempted_by
	lease                *lease      // PostgreSQL: this process's lease; nil on SQLite
	outage               atomic.Bool // a sync failed for an outage since the last success
	stopWatch, watchDone chan struct{}
}

// New returns a queue on store. With a nil syncer it only inserts
// (for the operator's commands) and must not be started.
func New(store *Store, syncer *bridge.Syncer, cfg Config) (*Queue, error) {
	if store == nil {
		return nil, errors.New("bridge: queue needs a store")
	}
	cfg.defaults()
	q := &Queue{cfg: cfg, store: store, syncer: syncer, clientID: newClientID()}
	q.sql = newIntakeSQL(store)
	if store.postgres {
		q.lease = &lease{cancels: map[uint64]context.CancelCauseFunc{}}
	}
	// SQLite has one writer, so one lane; PostgreSQL commits transactions
	// side by side, so webhooks for different contacts use several.
	lanes := 1
	if store.postgres {
		lanes = postgresIntakeLanes
	}
	for range lanes {
		q.intake = append(q.intake, &batcher{run: q.acceptBatch, delay: groupCommitDelay})
	}
	rc := &river.Config{
		ID: q.clientID,
		// River's routine Info lines become Debug: see quietHandler.
		Logger:                      slog.New(quietHandler{cfg.Logger.Handler()}).With(slog.String("component", "river")),
		JobTimeout:                  cfg.JobTimeout,
		RescueStuckJobsAfter:        cfg.RescueAfter,
		MaxAttempts:                 cfg.MaxAttempts,
		RetryPolicy:                 backoff{base: cfg.RetryBase},
		FetchPollInterval:           cfg.PollInterval,
		FetchCooldown:               min(cfg.PollInterval, 50*time.Millisecond),
		CompletedJobRetentionPeriod: time.Hour,
	}
	if syncer != nil {
		workers := river.NewWorkers()
		river.AddWorker(workers, &syncWorker{q: q})
		river.AddWorker(workers, &cleanupWorker{q: q})
		rc.Workers = workers
		rc.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cleanupInterval),
			func() (river.JobArgs, *river.InsertOpts) { return cleanupArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})}
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
	}
	if store.postgres {
		q.complete = func(ctx context.Context, tx *sql.Tx, job *river.Job[syncContactArgs]) error {
			_, err := river.JobCompleteTx[*riverdatabasesql.Driver](ctx, tx, job)
			return err
		}
		rc.PollOnly = true // database/sql cannot LISTEN
	} else {
		q.complete = func(ctx context.Context, tx *sql.Tx, job *river.Job[syncContactArgs]) error {
			_, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job)
			return err
		}
	}
	var err error
	if q.client, err = river.NewClient(store.driver, rc); err != nil {
		return nil, fmt.Errorf("bridge: queue: %w", err)
	}
	cfg.Metrics.QueueDepth(q.queued)
	return q, nil
}

// Start starts the workers. On SQLite it takes the server lock (see
// Store.LockServer) and hands back at once the jobs a dead process left
// running; on PostgreSQL it takes this process's lease, then keeps it and
// watches the other processes' (see recovery.go).
func (q *Queue) Start(ctx context.Context) error {
	if q.syncer == nil {
		return errors.New("bridge: an insert-only queue cannot be started")
	}
	if err := q.store.LockServer(); err != nil {
		return err
	}
	if q.lease != nil {
		if err := q.heartbeat(ctx); err != nil {
			return err
		}
	}
	if !q.store.postgres {
		// The server lock says the last leader is dead: its lease need not
		// be waited out before this process runs River's scheduler (which
		// makes due retries available) and the periodic cleanup.
		if _, err := q.store.db.ExecContext(ctx, `DELETE FROM river_leader`); err != nil {
			return fmt.Errorf("clear the dead leader: %w", err)
		}
	}
	if _, err := q.takeOver(ctx); err != nil {
		return fmt.Errorf("take over the jobs of a dead process: %w", err)
	}
	if err := q.client.Start(ctx); err != nil {
		return err
	}
	if q.lease != nil {
		q.stopWatch, q.watchDone = make(chan struct{}), make(chan struct{})
		go q.watch(q.stopWatch, q.watchDone)
	}
	return nil
}

// Stop lets running syncs finish until ctx ends, then cancels them; a
// cancelled sync stays queued and runs again after the next start.
func (q *Queue) Stop(ctx context.Context) error {
	if q.stopWatch != nil {
		// The lease is kept until the workers are done.
		defer func() { close(q.stopWatch); <-q.watchDone; q.dropLease() }()
	}
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return q.client.StopAndCancel(cctx)
	}
	return err
}

// Dispatch commits req durably and queues its contact's sync. An app event
// whose webhookId was seen within the dedupe window is acknowledged as a
// duplicate; any other webhook is applied. With
// d.Wait it then waits, at most SyncWait, for the outcome.
func (q *Queue) Dispatch(ctx context.Context, req bridge.Request, d bridge.Delivery) (bridge.Outcome, error) {
	id, dup, wait, err := q.accept(ctx, req, d)
	if err != nil || dup {
		return bridge.Outcome{EventID: id, Duplicate: dup}, err
	}
	if wait == nil {
		return bridge.Outcome{EventID: id}, nil
	}
	defer q.waiters.forget(id, wait)
	timer := time.NewTimer(q.cfg.SyncWait)
	defer timer.Stop()
	poll := time.NewTicker(250 * time.Millisecond) // another process may run it
	defer poll.Stop()
	for {
		select {
		case <-wait:
		case <-poll.C:
		case <-timer.C:
			return bridge.Outcome{EventID: id}, nil
		case <-ctx.Done():
			return bridge.Outcome{EventID: id}, nil
		}
		if ev, err := q.event(ctx, id); err == nil && ev.Status != bridge.StatusQueued {
			return ev.outcome(), nil
		}
	}
}

// queued counts the queued events, for the metrics.
func (q *Queue) queued(ctx context.Context) (int64, error) {
	var n int64
	err := q.store.db.QueryRowContext(ctx, q.store.q(`SELECT COUNT(*) FROM hlbridge_event WHERE status = ?`), bridge.StatusQueued).Scan(&n)
	if err != nil {
		q.cfg.Logger.Warn("metrics: count queued events", slog.String("error", err.Error()))
	}
	return n, err
}

// decodeContact reads a contact's stored newest state; nil for none.
func decodeContact(s sql.NullString) *highlevel.Contact {
	if !s.Valid || s.String == "" {
		return nil
	}
	var c highlevel.Contact
	if json.Unmarshal([]byte(s.String), &c) != nil {
		return nil
	}
	return &c
}

func decodeRequest(s sql.NullString) *bridge.Request {
	if !s.Valid || s.String == "" {
		return nil
	}
	var r bridge.Request
	if json.Unmarshal([]byte(s.String), &r) != nil {
		return nil
	}
	return &r
}

// backoff is the retry policy: exponential from base, capped at 30
// minutes, with ±25% jitter so that a recovering site is not hit by a wave.
type backoff struct{ base time.Duration }

// maxBackoff caps the delay between two attempts.
const maxBackoff = 30 * time.Minute

func (b backoff) delay(attempt int) time.Duration {
	d := b.base
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := b.delay(job.Attempt)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return time.Now().Add(d + jitter)
}

// waiters lets sync=true requests hear when their event is finished.
type waiters struct {
	mu sync.Mutex
	m  map[int64][]chan struct{}
}

func (w *waiters) add(id int64) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[int64][]chan struct{}{}
	}
	ch := make(chan struct{})
	w.m[id] = append(w.m[id], ch)
	return ch
}

func (w *waiters) forget(id int64, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[id]
	for i, c := range list {
		if c == ch {
			w.m[id] = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(w.m[id]) == 0 {
		delete(w.m, id)
	}
}

func (w *waiters) done(ids []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		for _, ch := range w.m[id] {
			close(ch)
		}
		delete(w.m, id)
	}
}
