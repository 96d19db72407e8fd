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
// webhooks that arrive wait and then share the next one, and its
// statements: one to lock their contacts, one to store their events, one
// to write the contacts back and River's one to insert the new jobs. Under
// load this amortises BEGIN, COMMIT and each statement's fixed cost over
// many webhooks; alone, a webhook commits at once.
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

	id    int64
	seq   int64       // its contact's sequence number after it
	dup   bool        // an app event's delivery accepted before
	dupOf *acceptItem // the same delivery, earlier in its batch
	wait  chan struct{}
	err   error
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
			it.id, it.seq, it.dup, it.dupOf, it.wait = 0, 0, false, nil, nil
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

// The intake's statements. A batch's webhooks share three statements of
// many rows (lock their contacts, insert their events, write their
// contacts) instead of running three statements each: through
// database/sql and the driver, a statement's fixed cost was about half of
// what those per-webhook statements cost. A statement over n rows runs as
// runs of rows whose lengths are powers of two, largest first (37 rows:
// 32, 4 and 1), so that there are few texts, each compiled once by the
// connection's statement cache (see stmtcache.go; pgx keeps its own).
type rowsStmt int

const (
	rsLockContacts rowsStmt = iota
	rsWriteContacts
	rsInsertEvents
	numRowsStmts
)

// numRunLengths is how many run lengths there are: 1, 2, 4 … 128.
const numRunLengths = 8

// intakeSQL is the intake's SQL in the store's dialect.
type intakeSQL struct {
	lookupDelivery, upsertDelivery string
	syncNow, settleLater           string // move a contact's settling job
	rows                           [numRowsStmts][numRunLengths]string
}

func newIntakeSQL(s *Store) *intakeSQL {
	var x intakeSQL
	x.lookupDelivery = s.q(`SELECT event_id, expires_at FROM hlbridge_delivery WHERE fingerprint = ?`)
	x.upsertDelivery = s.q(`INSERT INTO hlbridge_delivery (fingerprint, event_id, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at`)
	// The kind is written out, not a parameter, so that the partial index
	// hlbridge_river_job_contact serves both statements below.
	settling := `kind = '` + syncKind + `' AND ` + s.jobContact() + ` = ? AND state = 'available'
		AND attempt = 0 AND scheduled_at > ` + s.now()
	x.syncNow = s.q(`UPDATE river_job SET scheduled_at = ` + s.now() + ` WHERE ` + settling)
	// A settling job starts a window after its newest webhook, but no
	// later than settleCap windows after its first (the job's creation).
	if s.postgres {
		x.settleLater = s.q(`UPDATE river_job SET scheduled_at = GREATEST(scheduled_at,
			LEAST(now() + CAST(? AS interval), created_at + CAST(? AS interval))) WHERE ` + settling)
	} else {
		x.settleLater = s.q(`UPDATE river_job SET scheduled_at = MAX(scheduled_at,
			MIN(datetime('now', 'subsec', ?), datetime(created_at, 'subsec', ?))) WHERE ` + settling)
	}
	// Creating a contact's row if need be, locking it (an upsert that
	// updates takes the row lock on PostgreSQL, as SELECT ... FOR UPDATE
	// would, and in the order of the rows given) and reading it is one
	// statement. The rows then exist: writing them back is an upsert too,
	// so that one statement writes many.
	forms := [numRowsStmts]struct{ head, row, tail string }{
		rsLockContacts: {`INSERT INTO hlbridge_contact (contact_id, seq) VALUES `, `(?, 0)`,
			` ON CONFLICT (contact_id) DO UPDATE SET seq = hlbridge_contact.seq RETURNING contact_id, seq, pending, latest`},
		rsWriteContacts: {`INSERT INTO hlbridge_contact (contact_id, seq, pending, latest) VALUES `, `(?, ?, ?, ?)`,
			` ON CONFLICT (contact_id) DO UPDATE SET seq = excluded.seq, pending = excluded.pending,
			latest = COALESCE(excluded.latest, hlbridge_contact.latest)`},
		rsInsertEvents: {`INSERT INTO hlbridge_event (received_at, contact_id, action, request, seq, status) VALUES `,
			`(?, ?, ?, ?, ?, ?)`, ` RETURNING id, contact_id, seq`},
	}
	for st, f := range forms {
		for l := range numRunLengths {
			x.rows[st][l] = s.q(f.head + strings.TrimSuffix(strings.Repeat(f.row+", ", 1<<l), ", ") + f.tail)
		}
	}
	return &x
}

// inRuns calls f for the runs of rows [i, i+n) that n rows split into,
// with the index l of each run's length (n = 1<<l).
func inRuns(rows int, f func(i, n, l int) error) error {
	i := 0
	for l := numRunLengths - 1; l >= 0; l-- {
		for n := 1 << l; rows-i >= n; i += n {
			if err := f(i, n, l); err != nil {
				return err
			}
		}
	}
	return nil
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
	// Row locks are taken in contact order, so that two processes' intake
	// transactions on PostgreSQL never wait on each other in a cycle. The
	// sort is stable: one contact's webhooks keep their order.
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b *acceptItem) int { return strings.Compare(a.req.ContactID, b.req.ContactID) })
	now := time.Now().UnixMilli()

	// An app event whose webhookId was accepted within the dedupe window,
	// or earlier in this batch, is a duplicate. The others are news.
	var news []*acceptItem
	var contactIDs []string // of the news, each once, in order
	var firstOf map[string]*acceptItem
	for _, it := range sorted {
		if it.d.WebhookID != "" {
			key := appDeliveryKey(it.d.WebhookID)
			if f := firstOf[key]; f != nil {
				it.dup, it.dupOf = true, f
				continue
			}
			var expires int64
			err := tx.QueryRowContext(ctx, q.sql.lookupDelivery, key).Scan(&it.id, &expires)
			switch {
			case err == nil && expires > now:
				it.dup = true
				continue
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("look up delivery: %w", err)
			}
			it.id = 0
			if firstOf == nil {
				firstOf = map[string]*acceptItem{}
			}
			firstOf[key] = it
		}
		news = append(news, it)
		if n := len(contactIDs); n == 0 || contactIDs[n-1] != it.req.ContactID {
			contactIDs = append(contactIDs, it.req.ContactID)
		}
	}

	cb := &contactBatch{q: q}
	if err := cb.lock(ctx, tx, contactIDs); err != nil {
		return err
	}
	for _, it := range news {
		if it.seq, err = cb.add(it.req, it.d.Wait); err != nil {
			return err
		}
	}
	if err := q.insertEvents(ctx, tx, news, now); err != nil {
		return err
	}
	for _, it := range sorted {
		switch {
		case it.dupOf != nil:
			it.id = it.dupOf.id
			continue
		case it.dup:
			continue
		case it.d.WebhookID != "":
			if _, err := tx.ExecContext(ctx, q.sql.upsertDelivery, appDeliveryKey(it.d.WebhookID), it.id, now+q.cfg.DedupeWindow.Milliseconds()); err != nil {
				return fmt.Errorf("store delivery: %w", err)
			}
		}
		if it.d.Wait {
			it.wait = q.waiters.add(it.id)
		}
	}
	if err := cb.write(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// insertEvents stores the events of items (each gets its id) with their
// contacts' new sequence numbers.
func (q *Queue) insertEvents(ctx context.Context, tx *sql.Tx, items []*acceptItem, now int64) error {
	type event struct {
		contactID string
		seq       int64
	}
	return inRuns(len(items), func(i, n, l int) error {
		args := make([]any, 0, 6*n)
		byEvent := make(map[event]*acceptItem, n)
		for _, it := range items[i : i+n] {
			args = append(args, now, it.req.ContactID, string(it.req.Action), eventRequest(it.req), it.seq, bridge.StatusQueued)
			byEvent[event{it.req.ContactID, it.seq}] = it
		}
		// RETURNING's order is not promised: a contact's sequence number
		// tells the events apart.
		rows, err := tx.QueryContext(ctx, q.sql.rows[rsInsertEvents][l], args...)
		if err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		defer rows.Close()
		got := 0
		for rows.Next() {
			var id int64
			var e event
			if err := rows.Scan(&id, &e.contactID, &e.seq); err != nil {
				return fmt.Errorf("store events: %w", err)
			}
			if it := byEvent[e]; it != nil {
				it.id = id
				got++
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		if got != n {
			return fmt.Errorf("store events: %d of %d events came back", got, n)
		}
		return nil
	})
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

// contactRow is a contact's row as one transaction changes it: read and
// locked once, changed in memory by each of its webhooks, written once.
type contactRow struct {
	seq           int64
	pending       sql.NullString // the merged request its next sync runs
	latest        sql.NullString // its newest known state, from payloads
	latestChanged bool
	syncNow       bool // its settling job is to start at once
	settleLater   bool // its settling job waits for the burst to pause
}

// contactBatch is the contacts one transaction queues requests for.
type contactBatch struct {
	q    *Queue
	ids  []string // locked, in order
	rows map[string]*contactRow
	jobs newJobs
}

// lock creates, locks and reads the rows of contactIDs (sorted, distinct).
func (cb *contactBatch) lock(ctx context.Context, tx *sql.Tx, contactIDs []string) error {
	cb.ids = contactIDs
	cb.rows = make(map[string]*contactRow, len(contactIDs))
	err := inRuns(len(contactIDs), func(i, n, l int) error {
		args := make([]any, n)
		for j, id := range contactIDs[i : i+n] {
			args[j] = id
		}
		rows, err := tx.QueryContext(ctx, cb.q.sql.rows[rsLockContacts][l], args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			r := &contactRow{}
			if err := rows.Scan(&id, &r.seq, &r.pending, &r.latest); err != nil {
				return err
			}
			cb.rows[id] = r
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("store contacts: %w", err)
	}
	if len(cb.rows) != len(contactIDs) {
		return fmt.Errorf("store contacts: %d of %d contacts came back", len(cb.rows), len(contactIDs))
	}
	return nil
}

// add merges req into its contact's pending request, folds its payload
// (if any) into the contact's newest known state, and makes sure the
// contact has a job: a new one starts after the settle window, unless now
// is true (a sync=true webhook), which also starts a waiting one at once.
// It returns the contact's new sequence number. The contact must be
// locked; nothing is written before write.
func (cb *contactBatch) add(req bridge.Request, now bool) (int64, error) {
	r := cb.rows[req.ContactID]
	if r == nil {
		return 0, fmt.Errorf("contact %q not locked", req.ContactID)
	}
	// The payload goes into the contact's newest state, not into the
	// pending request: whatever runs next applies that state, so the
	// webhook accepted last decides each field (A, B, A ends at A).
	if req.Contact != nil {
		c := req.Contact
		if known := decodeContact(r.latest); known != nil {
			known.Overlay(c)
			c = known
		}
		// Not json.Marshal(c): it would re-scan the result to check it, a
		// cost larger than the writing (see BenchmarkContactMarshal).
		b, err := c.MarshalJSON()
		if err != nil {
			return 0, fmt.Errorf("encode contact: %w", err)
		}
		r.latest, r.latestChanged = sql.NullString{String: string(b), Valid: true}, true
		req.Contact = nil
	}
	earlier := decodeRequest(r.pending)
	merged, _ := json.Marshal(bridge.Merge(earlier, &req))
	r.pending = sql.NullString{String: string(merged), Valid: true}
	r.seq++
	// A pending request means this contact's job exists (or is to be
	// inserted with this batch) and has not yet claimed it: the webhook
	// coalesces into it, and no job is inserted. The reconciler covers a
	// job that River dropped without our worker seeing it.
	if earlier == nil {
		cb.jobs.add(req.ContactID, now)
		return r.seq, nil
	}
	// Only a job still settling is moved: never run, available, due
	// later. A job snoozed for a Retry-After is 'scheduled' and keeps its
	// time. A job this batch is to insert starts its window then.
	switch {
	case cb.q.cfg.SettleWindow <= 0:
	case now:
		if !cb.jobs.startNow(req.ContactID) {
			r.syncNow = true
		}
	case cb.jobs.has(req.ContactID):
	default:
		// The burst goes on: the sync waits for it to pause.
		r.settleLater = true
	}
	return r.seq, nil
}

// write writes the contacts' rows back, moves their settling jobs and
// inserts their new ones.
func (cb *contactBatch) write(ctx context.Context, tx *sql.Tx) error {
	err := inRuns(len(cb.ids), func(i, n, l int) error {
		args := make([]any, 0, 4*n)
		for _, id := range cb.ids[i : i+n] {
			r := cb.rows[id]
			var latest any // NULL keeps the stored state
			if r.latestChanged {
				latest = r.latest.String
			}
			args = append(args, id, r.seq, r.pending, latest)
		}
		_, err := tx.ExecContext(ctx, cb.q.sql.rows[rsWriteContacts][l], args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("update contacts: %w", err)
	}
	s := cb.q.store
	for _, id := range cb.ids {
		// Starting now wins over settling later, in whichever order the
		// batch's webhooks asked for them.
		switch r := cb.rows[id]; {
		case r.syncNow:
			if _, err := tx.ExecContext(ctx, cb.q.sql.syncNow, id); err != nil {
				return fmt.Errorf("start job now: %w", err)
			}
		case r.settleLater:
			after, limit := s.interval(cb.q.cfg.SettleWindow), s.interval(settleCap*cb.q.cfg.SettleWindow)
			if _, err := tx.ExecContext(ctx, cb.q.sql.settleLater, after, limit, id); err != nil {
				return fmt.Errorf("settle job later: %w", err)
			}
		}
	}
	return cb.q.insertJobs(ctx, tx, &cb.jobs)
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
