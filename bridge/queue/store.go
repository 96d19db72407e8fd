package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go

	"github.com/hlbridge/hlbridge/bridge"
)

// Store is the bridge's own database: River's job tables and the bridge's
// events, contacts and deliveries. It is SQLite on a local file (the
// default) or PostgreSQL, which several bridge processes can share.
type Store struct {
	db       *sql.DB
	postgres bool
	driver   riverdriver.Driver[*sql.Tx]
	stop     func() // stops background work (SQLite checkpoints)

	path       string   // the SQLite file
	serverLock *os.File // see LockServer; nil when not held
}

// OpenStore opens (creating it if needed) and migrates the store named by
// dsn: "postgres://…" or "postgresql://…" for PostgreSQL; otherwise a
// SQLite file, as a path or "sqlite://path" ("sqlite:path").
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	name := redactedDSN(dsn)
	var unlock func()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.postgres = true
		if s.db, err = sql.Open("pgx", dsn); err != nil {
			return nil, fmt.Errorf("open store %s: %w", name, redactDSN(err, dsn))
		}
		// Keep the connections: reopening one per transaction costs more
		// than the transaction.
		s.db.SetMaxOpenConns(16)
		s.db.SetMaxIdleConns(16)
		s.driver = riverdatabasesql.New(s.db)
		unlock, err = s.lockPostgres(ctx)
	} else {
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
		if path == "" {
			return nil, errors.New("store: empty SQLite path")
		}
		name = path
		s.path = path
		// Immediate transactions take the write lock at BEGIN, so that a second
		// process (the events command) waits instead of failing mid-way.
		// Checkpoints (copying the WAL into the database, with an fsync) run
		// in the background, not inside whichever commit crosses the WAL's
		// size threshold: that commit's webhook would wait for the disk.
		// Statement journals (a multi-row statement's undo, such as River's
		// insert of a batch's jobs) stay in memory, not in temp files:
		// writing them out was a few percent of the intake's CPU, in
		// syscalls, and put copies of contacts' rows on disk beside the
		// database that secure_delete cleans.
		q := url.Values{"_pragma": {"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "wal_autocheckpoint(0)", "secure_delete(ON)", "temp_store(MEMORY)"},
			"_txlock": {"immediate"}}
		if s.db, err = openCachingSQLite("file:" + path + "?" + q.Encode()); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		// SQLite has one writer; River's driver asks for a single connection
		// so that its concurrent work never meets SQLITE_BUSY.
		s.db.SetMaxOpenConns(1)
		s.driver = riversqlite.New(s.db)
		unlock, err = lockFile(path)
	}
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store %s: %w", name, redactDSN(err, dsn))
	}
	err = s.migrate(ctx)
	unlock()
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store %s: %w", name, redactDSN(err, dsn))
	}
	s.stop = func() {}
	if !s.postgres {
		if s.stop, err = checkpointInBackground(name); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("store %s: %w", name, err)
		}
	}
	return s, nil
}

// checkpointInterval is how often the SQLite WAL is checkpointed.
const checkpointInterval = 500 * time.Millisecond

// checkpointInBackground checkpoints the SQLite file at path on a
// connection of its own. PASSIVE checkpoints never block writers, so the
// intake's single connection keeps committing while the WAL is copied.
func checkpointInBackground(path string) (stop func(), err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`) // leave a small file behind
				return
			case <-t.C:
				db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		db.Close()
	}, nil
}

// migrationLockKey is the PostgreSQL advisory lock that serialises the
// migrations of processes starting at once ("hlbr" in ASCII).
const migrationLockKey = 0x686c6272

// lockPostgres holds an advisory lock on one connection until unlock, so
// that two processes starting together migrate one after the other.
func (s *Store) lockPostgres(ctx context.Context) (unlock func(), err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock for migration: %w", err)
	}
	return func() {
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
		conn.Close()
	}, nil
}

// lockFile holds an exclusive flock on the SQLite file (creating it if
// needed) until unlock, so that processes opening a new store at once
// migrate one after the other. flock does not touch SQLite's own locks.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock for migration: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// redactedDSN names a store in messages: a path, or a URL without password.
func redactedDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Redacted()
	}
	return dsn
}

// Close stops the store's background work, closes the database and lets
// go of the server lock.
func (s *Store) Close() error {
	s.stop()
	err := s.db.Close()
	if s.serverLock != nil {
		s.serverLock.Close()
		s.serverLock = nil
	}
	return err
}

// Ping reports whether the store answers a read of the bridge's own table,
// for /readyz. It writes nothing, so a busy SQLite writer does not block it.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM hlbridge_event LIMIT 1`).Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("the store did not answer: %w", err)
	}
	return nil
}

// redactDSN keeps a database password out of an error message.
func redactDSN(err error, dsn string) error {
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
			return errors.New(strings.ReplaceAll(err.Error(), p, "REDACTED"))
		}
	}
	return err
}

// migrate brings River's tables and the bridge's own up to date.
func (s *Store) migrate(ctx context.Context) error {
	m, err := rivermigrate.New(s.driver, nil)
	if err != nil {
		return fmt.Errorf("migrate queue: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate queue: %w", err)
	}
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.postgres {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	// Times are Unix milliseconds in both dialects; JSON is text.
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS hlbridge_event (
			id ` + serial + `,
			received_at BIGINT NOT NULL,
			contact_id TEXT NOT NULL,
			action TEXT NOT NULL,
			request TEXT NOT NULL,
			seq BIGINT NOT NULL,
			status TEXT NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0,
			result TEXT,
			error TEXT,
			finished_at BIGINT)`,
		`CREATE INDEX IF NOT EXISTS hlbridge_event_contact ON hlbridge_event (contact_id, status, seq)`,
		`CREATE INDEX IF NOT EXISTS hlbridge_event_status ON hlbridge_event (status, id)`,
		`CREATE TABLE IF NOT EXISTS hlbridge_contact (
			contact_id TEXT PRIMARY KEY,
			seq BIGINT NOT NULL,
			pending TEXT,
			inflight TEXT,
			inflight_seq BIGINT,
			latest TEXT)`,
		`CREATE TABLE IF NOT EXISTS hlbridge_delivery (
			fingerprint TEXT PRIMARY KEY,
			event_id BIGINT NOT NULL,
			expires_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS hlbridge_delivery_expires ON hlbridge_delivery (expires_at)`,
	}
	// A contact's sync job, found by its contact id: the intake moves a
	// settling job's start when another webhook joins it, and recovery
	// looks jobs up by contact. River's table, our index: created again
	// after a River migration that rebuilds the table.
	if s.postgres {
		stmts = append(stmts, `CREATE INDEX IF NOT EXISTS hlbridge_river_job_contact ON river_job ((`+s.jobContact()+`)) WHERE kind = '`+syncKind+`'`)
	} else {
		stmts = append(stmts, `CREATE INDEX IF NOT EXISTS hlbridge_river_job_contact ON river_job (`+s.jobContact()+`) WHERE kind = '`+syncKind+`'`)
	}
	if s.postgres {
		// Each process's lease, by River client id (see recovery.go).
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS hlbridge_process (
			client_id TEXT PRIMARY KEY,
			expires_at TIMESTAMPTZ NOT NULL)`)
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate store: %w", err)
		}
	}
	return s.migrateNoNewsDropped(ctx)
}

// migrateNoNewsDropped brings a store of an older hlbridge to the rules of
// this one: each contact keeps its newest known payload (latest); workflow
// webhooks are no longer deduplicated, so their delivery fingerprints (a
// hash over the query, access key included) are deleted; and events keep
// no payload, which could hold a password. Each step is idempotent.
func (s *Store) migrateNoNewsDropped(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM hlbridge_delivery WHERE fingerprint NOT LIKE ?`), "app:%").Scan(&n); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	if n > 0 {
		if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM hlbridge_delivery WHERE fingerprint NOT LIKE ?`), "app:%"); err != nil {
			return fmt.Errorf("migrate store: forget workflow fingerprints: %w", err)
		}
	}
	if !s.postgres {
		var has int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('hlbridge_contact') WHERE name = 'latest'`).Scan(&has); err != nil {
			return fmt.Errorf("migrate store: %w", err)
		}
		if has == 0 {
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE hlbridge_contact ADD COLUMN latest TEXT`); err != nil {
				return fmt.Errorf("migrate store: %w", err)
			}
		}
	} else if _, err := s.db.ExecContext(ctx, `ALTER TABLE hlbridge_contact ADD COLUMN IF NOT EXISTS latest TEXT`); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, request FROM hlbridge_event WHERE request LIKE ? OR request LIKE ?`), `%"contact":%`, `%"password":%`)
	if err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	stripped := map[int64]string{}
	for rows.Next() {
		var id int64
		var raw string
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return fmt.Errorf("migrate store: %w", err)
		}
		var req bridge.Request
		if json.Unmarshal([]byte(raw), &req) == nil {
			stripped[id] = eventRequest(req)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	for id, req := range stripped {
		if _, err := s.db.ExecContext(ctx, s.q(`UPDATE hlbridge_event SET request = ? WHERE id = ?`), req, id); err != nil {
			return fmt.Errorf("migrate store: strip event %d: %w", id, err)
		}
	}
	return nil
}

// q rewrites a query written with ? placeholders for the store's dialect.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// forUpdate is the row-lock clause: PostgreSQL needs it; SQLite has one
// writer and one connection, so its transactions are serial already.
func (s *Store) forUpdate() string {
	if s.postgres {
		return " FOR UPDATE"
	}
	return ""
}
