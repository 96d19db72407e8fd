package queue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
)

// Recovery of the jobs a dead process was running, without waiting for
// River's rescuer (BRIDGE_RESCUE_AFTER, which stays as a last resort):
//
//   - SQLite: one server per file (Store.LockServer), so every job found
//     running when the server starts was left by a dead process. Start
//     hands them back at once.
//   - PostgreSQL: every process renews a lease row (hlbridge_process) for
//     its River client id every heartbeatInterval; each process, every
//     heartbeatInterval, hands back the running jobs whose last attempt
//     belongs to a client whose lease has expired. A process paused
//     (SIGSTOP) past its lease counts as dead too: its PostgreSQL session
//     stays open, which is why a lease with a time-out is used rather than
//     a session advisory lock, which would keep a paused process "alive"
//     forever and its jobs stuck.
//
// Handing back a sync job cancels the dead attempt's row and inserts a
// fresh job for the contact carrying the attempt count minus the dead
// attempt (a death costs no attempt) and the errors so far. A new row,
// rather than setting the old one available again, fences River's own
// bookkeeping: when a paused process resumes, River's completer updates
// the old row only "if running", which it no longer is. The bridge's own
// writes are fenced in claim and finish (ownedTx), and WordPress writes by
// the lease check before each one (bridge.WithWriteFence).

const (
	// heartbeatInterval is how often a PostgreSQL process renews its lease
	// and looks for the jobs of dead processes.
	heartbeatInterval = 2 * time.Second
	// leaseTTL is how long a lease lasts after its renewal: a process is
	// dead to the others leaseTTL after its last heartbeat. A dead
	// process's jobs are thus taken over within about leaseTTL +
	// heartbeatInterval.
	leaseTTL = 10 * time.Second
	// leaseMargin is how much earlier than the others a process holds
	// its own lease lost, so that it stops writing before they take over.
	leaseMargin = 3 * time.Second
)

// errLeaseLost is why a process stops a sync: its lease expired (it was
// paused, or could not reach the database), so another process may have
// taken the job over. The events stay queued for the new owner.
var errLeaseLost = errors.New("lease lost: another process may have taken this job over")

// errNotOwner is why claim or finish gives a job up: its attempt is no
// longer this process's (it was handed to another process).
var errNotOwner = errors.New("job taken over by another process")

// newClientID names this process's River client: unique, and readable in
// river_job.attempted_by.
func newClientID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "hlbridge"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s_%d_%s", host, os.Getpid(), hex.EncodeToString(b))
}

// lease is this process's view of its PostgreSQL lease, on the monotonic
// clock (which keeps running while the process is stopped). Each sync
// runs under the lease's epoch at its start; a renewal after a lapse
// starts a new epoch, so syncs of the old one never write again even
// though the lease is held anew.
type lease struct {
	mu       sync.Mutex
	epoch    uint64
	deadline time.Time
	cancels  map[uint64]context.CancelCauseFunc
	next     uint64
}

// hold returns the context a sync runs in: cancelled, with errLeaseLost,
// when the lease is seen lost, and carrying a fence that checks the lease
// before every WordPress write. A nil lease (SQLite) fences nothing.
func (l *lease) hold(ctx context.Context) (context.Context, func()) {
	if l == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	epoch := l.epoch
	id := l.next
	l.next++
	l.cancels[id] = cancel
	l.mu.Unlock()
	ctx = bridge.WithWriteFence(ctx, func() error { return l.check(epoch) })
	return ctx, func() {
		l.mu.Lock()
		delete(l.cancels, id)
		l.mu.Unlock()
		cancel(nil)
	}
}

// check says whether a sync of epoch may still write.
func (l *lease) check(epoch uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if epoch != l.epoch || !time.Now().Before(l.deadline) {
		return errLeaseLost
	}
	return nil
}

// renewed records a renewal begun at start and committed by now. If the
// lease had lapsed before the renewal committed, others may have taken
// this process's jobs: a new epoch starts and running syncs are cancelled.
func (l *lease) renewed(start time.Time) (lapsed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lapsed = !l.deadline.IsZero() && !time.Now().Before(l.deadline) // zero: the first renewal
	if lapsed {
		l.lapseLocked()
	}
	l.deadline = start.Add(leaseTTL - leaseMargin)
	return lapsed
}

// expire cancels the running syncs if the lease has run out.
func (l *lease) expire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.deadline) {
		return false
	}
	l.lapseLocked()
	return true
}

func (l *lease) lapseLocked() {
	l.epoch++
	for id, cancel := range l.cancels {
		cancel(errLeaseLost)
		delete(l.cancels, id)
	}
}

// leaseLost says whether a sync's failure comes from a lost lease.
func leaseLost(ctx context.Context, err error) bool {
	return errors.Is(err, errLeaseLost) || errors.Is(context.Cause(ctx), errLeaseLost) || bridge.WriteFenceErr(ctx) != nil
}

// heartbeat renews the lease of this process in the store.
func (q *Queue) heartbeat(ctx context.Context) error {
	start := time.Now()
	_, err := q.store.db.ExecContext(ctx, `INSERT INTO hlbridge_process (client_id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
		ON CONFLICT (client_id) DO UPDATE SET expires_at = excluded.expires_at`, q.clientID, leaseTTL.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if q.lease.renewed(start) {
		q.cfg.Logger.Warn("lease had lapsed (paused, or the database was out of reach): running syncs stop, their jobs go to other processes")
	}
	return nil
}

// dropLease ends this process's lease at a clean stop, once its workers
// are done, so that nothing waits for it to expire.
func (q *Queue) dropLease() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.store.db.ExecContext(ctx, `DELETE FROM hlbridge_process WHERE client_id = $1`, q.clientID)
}

// watch renews the lease and takes over the jobs of dead processes, every
// heartbeatInterval, until stop is closed. PostgreSQL only.
func (q *Queue) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatInterval)
		if err := q.heartbeat(ctx); err != nil {
			q.cfg.Logger.Warn("lease", slog.String("error", err.Error()))
			if q.lease.expire() {
				q.cfg.Logger.Warn("lease lost: running syncs stop, their jobs go to other processes")
			}
		}
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := q.takeOver(ctx); err != nil {
			q.cfg.Logger.Warn("take over jobs of dead processes", slog.String("error", err.Error()))
		}
		cancel()
	}
}

// orphan is a running job whose process is gone.
type orphan struct {
	id, attempt int64
	kind        string
	contactID   sql.NullString
}

// takeOver hands back the running jobs of dead processes: on SQLite every
// running job (the caller holds the server lock), on PostgreSQL those
// whose last attempt belongs to a client without a live lease. It says
// how many.
func (q *Queue) takeOver(ctx context.Context) (int, error) {
	s := q.store
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	query := `SELECT id, attempt, kind, json_extract(args, '$.contact_id') FROM river_job WHERE state = 'running'`
	if s.postgres {
		// Last one wins: SKIP LOCKED leaves a job that its owner is
		// claiming or finishing right now to the next round.
		query = `SELECT id, attempt, kind, args->>'contact_id' FROM river_job j WHERE state = 'running'
			AND NOT EXISTS (SELECT 1 FROM hlbridge_process p
				WHERE p.client_id = j.attempted_by[array_length(j.attempted_by, 1)] AND p.expires_at > now())
			FOR UPDATE SKIP LOCKED`
	}
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("find orphaned jobs: %w", err)
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		if err := rows.Scan(&o.id, &o.attempt, &o.kind, &o.contactID); err != nil {
			rows.Close()
			return 0, err
		}
		orphans = append(orphans, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	now := s.now()
	for _, o := range orphans {
		attempt := max(o.attempt-1, 0) // the dead attempt is not spent
		if o.kind != (syncContactArgs{}).Kind() || !o.contactID.Valid {
			// Other jobs (the cleanup) are idempotent: available again.
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE river_job SET state = 'available', attempt = ?, scheduled_at = `+now+` WHERE id = ?`),
				attempt, o.id); err != nil {
				return 0, fmt.Errorf("release job %d: %w", o.id, err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE river_job SET state = 'cancelled', finalized_at = `+now+` WHERE id = ?`), o.id); err != nil {
			return 0, fmt.Errorf("cancel dead attempt of job %d: %w", o.id, err)
		}
		res, err := q.client.InsertTx(ctx, tx, syncContactArgs{ContactID: o.contactID.String}, nil)
		if err != nil {
			return 0, fmt.Errorf("requeue contact %s: %w", o.contactID.String, err)
		}
		if res.UniqueSkippedAsDuplicate {
			continue // cannot be: the unique job was the dead one
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE river_job SET attempt = ?, errors = (SELECT errors FROM river_job WHERE id = ?) WHERE id = ?`),
			attempt, o.id, res.Job.ID); err != nil {
			return 0, fmt.Errorf("carry attempts of job %d: %w", o.id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	q.cfg.Logger.Info("took over the jobs of a dead process", slog.Int("jobs", len(orphans)))
	return len(orphans), nil
}

// BringForward makes the syncs waiting out a retry backoff (state
// retryable: WordPress or HighLevel was down) available now, and says how
// many. Call it when WordPress has just answered: at start-up after the
// site's check, and the worker calls it when a sync succeeds after an
// outage. Syncs snoozed for a rate limit's Retry-After are scheduled, not
// retryable, and keep their time.
func (q *Queue) BringForward(ctx context.Context) (int64, error) {
	s := q.store
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE river_job SET state = 'available', scheduled_at = `+s.now()+`
		WHERE kind = ? AND state = 'retryable'`), (syncContactArgs{}).Kind())
	if err != nil {
		return 0, fmt.Errorf("bring retries forward: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		q.cfg.Logger.Info("WordPress answers: retries brought forward", slog.Int64("jobs", n))
	}
	return n, nil
}

// jobContact is the SQL expression of a river_job row's contact id.
func (s *Store) jobContact() string {
	if s.postgres {
		return "args->>'contact_id'"
	}
	return "json_extract(args, '$.contact_id')"
}

// interval is d as the dialect adds it to a time: an interval for
// PostgreSQL, a datetime() modifier for SQLite.
func (s *Store) interval(d time.Duration) string {
	if s.postgres {
		return strconv.FormatInt(d.Milliseconds(), 10) + " milliseconds"
	}
	return fmt.Sprintf("%+.3f seconds", d.Seconds())
}

// now is the database's current time, in River's format for the dialect.
func (s *Store) now() string {
	if s.postgres {
		return "now()"
	}
	return "datetime('now', 'subsec')"
}

// ownedTx locks job's row in tx and checks that its current attempt is
// this process's: running, same attempt, last attempted by this client.
// Otherwise the job was handed to another process and errNotOwner says
// to give it up without writing.
func (q *Queue) ownedTx(ctx context.Context, tx *sql.Tx, jobID int64, attempt int) error {
	s := q.store
	last := `json_extract(attempted_by, '$[#-1]')`
	if s.postgres {
		last = `attempted_by[array_length(attempted_by, 1)]`
	}
	var state string
	var gotAttempt int
	var by sql.NullString
	err := tx.QueryRowContext(ctx, s.q(`SELECT state, attempt, `+last+` FROM river_job WHERE id = ?`+s.forUpdate()), jobID).
		Scan(&state, &gotAttempt, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return errNotOwner
	}
	if err != nil {
		return fmt.Errorf("check job ownership: %w", err)
	}
	if state != "running" || gotAttempt != attempt || by.String != q.clientID {
		return errNotOwner
	}
	return nil
}
