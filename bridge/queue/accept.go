package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/hlbridge/hlbridge/bridge"
)

// The intake commits webhooks in groups: while one transaction runs, the
// webhooks that arrive wait and then share the next one, with statements
// prepared once per transaction. Under load this amortises BEGIN, COMMIT
// and SQL compilation over many webhooks; alone, a webhook commits at once.
// No webhook is answered before the transaction holding it has committed.
//
// A webhook that finds the intake idle waits groupCommitDelay before its
// transaction starts, for others to join it, as PostgreSQL's commit_delay
// does. At a moderate rate (1,000/s) without it nearly every webhook had a
// transaction of its own, and paid alone for what a transaction costs
// whatever it holds: BEGIN and COMMIT, River's insert statement (which
// River compiles anew each time) and the WAL pages written, about half of
// the intake's CPU. Under heavier load the intake is never idle and the
// delay never applies.

// settleCap bounds the settle window's extensions: a contact whose
// webhooks never pause for a window is synced settleCap windows after the
// first of them, and then again as they go on.
const settleCap = 10

// maxBatch bounds how many webhooks share one transaction.
const maxBatch = 128

// groupCommitDelay is how long a webhook that finds the intake idle waits
// for others to share its transaction.
const groupCommitDelay = 2 * time.Millisecond

// postgresIntakeLanes is how many intake transactions run at once on
// PostgreSQL. A contact always goes through the same lane, so its webhooks
// keep their order and lanes never wait on each other's row locks.
const postgresIntakeLanes = 8

// acceptItem is one webhook on its way into the store.
type acceptItem struct {
	req  bridge.Request
	d    bridge.Delivery
	done chan struct{}

	id   int64
	dup  bool
	wait chan struct{}
	err  error
}

// batcher groups concurrent submissions. The first to find it idle runs
// the batch holding its item; whoever is left waiting is run by a
// goroutine it starts, so no caller drains batches that are not its own.
type batcher struct {
	run     func([]*acceptItem)
	delay   time.Duration // before a batch that found the batcher idle
	mu      sync.Mutex
	items   []*acceptItem
	running bool
}

// submit hands it to a batch and returns when that batch has committed
// (or failed).
func (b *batcher) submit(it *acceptItem) {
	b.mu.Lock()
	b.items = append(b.items, it)
	if b.running {
		b.mu.Unlock()
		<-it.done
		return
	}
	b.running = true
	b.mu.Unlock()
	if b.delay > 0 {
		time.Sleep(b.delay)
	}
	b.runNext() // its batch holds it
	<-it.done
	b.mu.Lock()
	more := len(b.items) > 0
	if !more {
		b.running = false
	}
	b.mu.Unlock()
	if more {
		go b.drain()
	}
}

// runNext runs one batch of what waits; it reports false when nothing did.
func (b *batcher) runNext() bool {
	b.mu.Lock()
	n := min(len(b.items), maxBatch)
	batch := b.items[:n:n]
	b.items = b.items[n:]
	b.mu.Unlock()
	if n == 0 {
		return false
	}
	b.run(batch)
	return true
}

// drain runs batches until nothing waits.
func (b *batcher) drain() {
	for {
		b.runNext()
		b.mu.Lock()
		if len(b.items) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// accept commits one webhook durably and says whether it was a duplicate.
func (q *Queue) accept(_ context.Context, req bridge.Request, d bridge.Delivery) (id int64, dup bool, wait chan struct{}, err error) {
	it := &acceptItem{req: req, d: d, done: make(chan struct{})}
	lane := 0
	if len(q.intake) > 1 {
		h := fnv.New32a()
		h.Write([]byte(req.ContactID))
		lane = int(h.Sum32() % uint32(len(q.intake)))
	}
	q.intake[lane].submit(it)
	return it.id, it.dup, it.wait, it.err
}

// acceptBatch commits items in one transaction. If that fails, each item
// is tried in a transaction of its own, so one bad item fails alone.
func (q *Queue) acceptBatch(items []*acceptItem) {
	// The callers' contexts are not used: a webhook whose sender gave up is
	// still committed whole or not at all (HighLevel's retry then dedupes).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := q.acceptTx(ctx, items)
	if err != nil && len(items) > 1 {
		for _, it := range items {
			it.id, it.dup, it.wait = 0, false, nil
			it.err = q.acceptTx(ctx, []*acceptItem{it})
		}
	} else {
		for _, it := range items {
			it.err = err
		}
	}
	for _, it := range items {
		close(it.done)
	}
}

// The intake's statements. Each is prepared once, on the database, when
// the queue is made; a transaction binds those it uses (database/sql keeps
// a statement prepared on each connection it has run on), so that no
// webhook pays for compiling SQL, however small its batch.
type acceptStmt int

const (
	stLookupDelivery acceptStmt = iota
	stLockContact
	stUpdateContact
	stInsertEvent
	stUpsertDelivery
	stSyncNow
	stSettleLater
	numAcceptStmts
)

// acceptQueries are the statements' SQL in the store's dialect.
func acceptQueries(s *Store) [numAcceptStmts]string {
	var qs [numAcceptStmts]string
	qs[stLookupDelivery] = `SELECT event_id, expires_at FROM hlbridge_delivery WHERE fingerprint = ?`
	// One statement creates the contact's row if need be, locks it (an
	// upsert that updates takes the row lock on PostgreSQL, as SELECT ...
	// FOR UPDATE would) and reads it.
	qs[stLockContact] = `INSERT INTO hlbridge_contact (contact_id, seq) VALUES (?, 0)
		ON CONFLICT (contact_id) DO UPDATE SET seq = hlbridge_contact.seq RETURNING seq, pending, latest`
	qs[stUpdateContact] = `UPDATE hlbridge_contact SET seq = ?, pending = ?, latest = COALESCE(?, latest) WHERE contact_id = ?`
	qs[stInsertEvent] = `INSERT INTO hlbridge_event (received_at, contact_id, action, request, seq, status) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`
	qs[stUpsertDelivery] = `INSERT INTO hlbridge_delivery (fingerprint, event_id, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at`
	// The kind is written out, not a parameter, so that the partial index
	// hlbridge_river_job_contact serves both statements below.
	settling := `kind = '` + syncKind + `' AND ` + s.jobContact() + ` = ? AND state = 'available'
		AND attempt = 0 AND scheduled_at > ` + s.now()
	qs[stSyncNow] = `UPDATE river_job SET scheduled_at = ` + s.now() + ` WHERE ` + settling
	// A settling job starts a window after its newest webhook, but no
	// later than settleCap windows after its first (the job's creation).
	if s.postgres {
		qs[stSettleLater] = `UPDATE river_job SET scheduled_at = GREATEST(scheduled_at,
			LEAST(now() + CAST(? AS interval), created_at + CAST(? AS interval))) WHERE ` + settling
	} else {
		qs[stSettleLater] = `UPDATE river_job SET scheduled_at = MAX(scheduled_at,
			MIN(datetime('now', 'subsec', ?), datetime(created_at, 'subsec', ?))) WHERE ` + settling
	}
	for i := range qs {
		qs[i] = s.q(qs[i])
	}
	return qs
}

// prepareAcceptStmts prepares the intake's statements on the store's
// database. It runs when the queue is made, before anything holds the
// connection (SQLite has one).
func prepareAcceptStmts(ctx context.Context, s *Store) ([numAcceptStmts]*sql.Stmt, error) {
	var stmts [numAcceptStmts]*sql.Stmt
	for i, query := range acceptQueries(s) {
		p, err := s.db.PrepareContext(ctx, query)
		if err != nil {
			for _, p := range stmts[:i] {
				p.Close()
			}
			return stmts, fmt.Errorf("prepare intake: %w", err)
		}
		stmts[i] = p
	}
	return stmts, nil
}

// acceptStmts are the intake's statements on one transaction.
type acceptStmts struct {
	tx    *sql.Tx
	db    *[numAcceptStmts]*sql.Stmt
	bound [numAcceptStmts]*sql.Stmt
}

func (q *Queue) prepareAccept(_ context.Context, tx *sql.Tx) (*acceptStmts, error) {
	return &acceptStmts{tx: tx, db: &q.acceptStmts}, nil
}

func (st *acceptStmts) get(ctx context.Context, id acceptStmt) *sql.Stmt {
	if st.bound[id] == nil {
		st.bound[id] = st.tx.StmtContext(ctx, st.db[id])
	}
	return st.bound[id]
}

// exec runs statement id with args.
func (st *acceptStmts) exec(ctx context.Context, id acceptStmt, args ...any) error {
	_, err := st.get(ctx, id).ExecContext(ctx, args...)
	return err
}

// scan runs statement id with args and scans its one row into dest.
func (st *acceptStmts) scan(ctx context.Context, id acceptStmt, args []any, dest ...any) error {
	return st.get(ctx, id).QueryRowContext(ctx, args...).Scan(dest...)
}

// acceptTx is the intake's transaction for items. On error nothing of it
// is kept, and the items' waiters are forgotten.
func (q *Queue) acceptTx(ctx context.Context, items []*acceptItem) (err error) {
	tx, err := q.store.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			for _, it := range items {
				if it.wait != nil {
					q.waiters.forget(it.id, it.wait)
				}
			}
		}
	}()
	st, err := q.prepareAccept(ctx, tx)
	if err != nil {
		return err
	}
	// Row locks are taken in contact order, so that two processes' intake
	// transactions on PostgreSQL never wait on each other in a cycle. The
	// sort is stable: one contact's webhooks keep their order.
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b *acceptItem) int { return strings.Compare(a.req.ContactID, b.req.ContactID) })
	now := time.Now().UnixMilli()
	jobs := &newJobs{}
	for _, it := range sorted {
		if err := q.acceptOne(ctx, tx, st, jobs, it, now); err != nil {
			return err
		}
	}
	if err := q.insertJobs(ctx, tx, jobs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// acceptOne stores one webhook inside the intake's transaction.
func (q *Queue) acceptOne(ctx context.Context, tx *sql.Tx, st *acceptStmts, jobs *newJobs, it *acceptItem, now int64) error {
	key := ""
	if it.d.WebhookID != "" {
		key = appDeliveryKey(it.d.WebhookID)
		var expires int64
		err := st.scan(ctx, stLookupDelivery, []any{key}, &it.id, &expires)
		switch {
		case err == nil && expires > now:
			it.dup = true
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("look up delivery: %w", err)
		}
	}
	seq, err := q.enqueueTx(ctx, tx, st, jobs, it.req, it.d.Wait)
	if err != nil {
		return err
	}
	if err := st.scan(ctx, stInsertEvent, []any{now, it.req.ContactID, string(it.req.Action), eventRequest(it.req), seq, bridge.StatusQueued}, &it.id); err != nil {
		return fmt.Errorf("store event: %w", err)
	}
	if key != "" {
		if err := st.exec(ctx, stUpsertDelivery, key, it.id, now+q.cfg.DedupeWindow.Milliseconds()); err != nil {
			return fmt.Errorf("store delivery: %w", err)
		}
	}
	if it.d.Wait {
		it.wait = q.waiters.add(it.id)
	}
	return nil
}

// appDeliveryKey is the stored identity of an app event's delivery.
func appDeliveryKey(webhookID string) string { return "app:" + webhookID }

// eventRequest is what an event keeps of its request: the action and its
// options, never the payload or its password. The payload lives on in the
// contact's newest known state, which a retry applies.
func eventRequest(req bridge.Request) string {
	req.Contact, req.Password = nil, ""
	b, _ := json.Marshal(req)
	return string(b)
}

// enqueueTx merges req into its contact's pending request, folds its
// payload (if any) into the contact's newest known state, and makes sure
// the contact has a job: a new one (added to jobs, inserted at the end of
// the batch) starts after the settle window, unless now is true (a
// sync=true webhook), which also starts a waiting one at once. It returns
// the contact's new sequence number.
func (q *Queue) enqueueTx(ctx context.Context, tx *sql.Tx, st *acceptStmts, jobs *newJobs, req bridge.Request, now bool) (int64, error) {
	var seq int64
	var pending, latest sql.NullString
	if err := st.scan(ctx, stLockContact, []any{req.ContactID}, &seq, &pending, &latest); err != nil {
		return 0, fmt.Errorf("store contact: %w", err)
	}
	// The payload goes into the contact's newest state, not into the
	// pending request: whatever runs next applies that state, so the
	// webhook accepted last decides each field (A, B, A ends at A).
	var newLatest sql.NullString
	if req.Contact != nil {
		c := req.Contact
		if known := decodeContact(latest); known != nil {
			known.Overlay(c)
			c = known
		}
		// Not json.Marshal(c): it would re-scan the result to check it, a
		// cost larger than the writing (see BenchmarkContactMarshal).
		b, err := c.MarshalJSON()
		if err != nil {
			return 0, fmt.Errorf("encode contact: %w", err)
		}
		newLatest = sql.NullString{String: string(b), Valid: true}
		req.Contact = nil
	}
	earlier := decodeRequest(pending)
	mergedJSON, _ := json.Marshal(bridge.Merge(earlier, &req))
	seq++
	if err := st.exec(ctx, stUpdateContact, seq, string(mergedJSON), newLatest, req.ContactID); err != nil {
		return 0, fmt.Errorf("update contact: %w", err)
	}
	// A pending request means this contact's job exists (or is to be
	// inserted with this batch) and has not yet claimed it: the webhook
	// coalesces into it, and no job is inserted. The reconciler covers a
	// job that River dropped without our worker seeing it.
	if earlier != nil {
		// Only a job still settling is moved: never run, available, due
		// later. A job snoozed for a Retry-After is 'scheduled' and keeps
		// its time. A job this batch is to insert starts its window then.
		switch {
		case q.cfg.SettleWindow <= 0:
		case now:
			if jobs.startNow(req.ContactID) {
				break
			}
			if err := st.exec(ctx, stSyncNow, req.ContactID); err != nil {
				return 0, fmt.Errorf("start job now: %w", err)
			}
		case jobs.has(req.ContactID):
		default:
			// The burst goes on: the sync waits for it to pause.
			after, limit := q.store.interval(q.cfg.SettleWindow), q.store.interval(settleCap*q.cfg.SettleWindow)
			if err := st.exec(ctx, stSettleLater, after, limit, req.ContactID); err != nil {
				return 0, fmt.Errorf("settle job later: %w", err)
			}
		}
		return seq, nil
	}
	jobs.add(req.ContactID, now)
	return seq, nil
}

// newJobs are the jobs a batch inserts when it ends, one per contact:
// River's insert of many jobs is one statement, where a job per webhook
// cost a statement (prepared anew each time) per webhook, and was the
// costliest part of the intake.
type newJobs struct {
	contacts []string
	now      []bool         // start at once, not after the settle window
	index    map[string]int // contact → its place in contacts
}

// add queues a job for contactID; now starts it without the settle window.
func (j *newJobs) add(contactID string, now bool) {
	if i := j.index[contactID]; i > 0 {
		j.now[i-1] = j.now[i-1] || now
		return
	}
	if j.index == nil {
		j.index = map[string]int{}
	}
	j.contacts = append(j.contacts, contactID)
	j.now = append(j.now, now)
	j.index[contactID] = len(j.contacts) // 1-based: 0 is absent
}

// has reports whether this batch inserts a job for contactID.
func (j *newJobs) has(contactID string) bool { return j.index[contactID] > 0 }

// startNow makes contactID's job, if this batch inserts one, start
// without the settle window, and reports whether there was one.
func (j *newJobs) startNow(contactID string) bool {
	i := j.index[contactID]
	if i == 0 {
		return false
	}
	j.now[i-1] = true
	return true
}

// insertJobs inserts the batch's new jobs with River, in one statement.
// Those that wait out the settle window are inserted due then (see
// syncContactArgs.Hooks). River skips a contact's job that exists already
// (another process's, or one a running sync left), which keeps its time.
func (q *Queue) insertJobs(ctx context.Context, tx *sql.Tx, jobs *newJobs) error {
	if len(jobs.contacts) == 0 {
		return nil
	}
	settleAt := time.Now().Add(q.cfg.SettleWindow)
	params := make([]river.InsertManyParams, len(jobs.contacts))
	for i, id := range jobs.contacts {
		params[i].Args = syncContactArgs{ContactID: id}
		if !jobs.now[i] && q.cfg.SettleWindow > 0 {
			params[i].InsertOpts = &river.InsertOpts{ScheduledAt: settleAt}
		}
	}
	if _, err := q.client.InsertManyFastTx(ctx, tx, params); err != nil {
		return fmt.Errorf("queue jobs: %w", err)
	}
	return nil
}
