package queue

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
)

// The SQLite connection keeps its statements compiled. River sends its
// queries as text and prepares none, so SQLite compiled each anew: for the
// intake's insert of a batch's jobs, River's one statement, that was about
// an eighth of the intake's CPU at 1,000 webhooks/s (most batches hold one
// or two webhooks then), and its fetches and completions paid the same.
// A connection caches a statement for each query text it is given (up to
// maxCachedStmts) and runs it again when the same text comes back.

// maxCachedStmts bounds the statements one connection keeps. River and
// the bridge use a few dozen query texts; past the bound (a query built
// with a varying number of placeholders, say) a query is compiled each
// time, as it was without the cache.
const maxCachedStmts = 256

// stmtCacheConnector opens SQLite connections that cache their statements.
type stmtCacheConnector struct {
	dsn string
	drv driver.Driver
}

// openCachingSQLite opens the SQLite database dsn (as sql.Open("sqlite",
// dsn) would) with connections that keep their statements compiled.
func openCachingSQLite(dsn string) (*sql.DB, error) {
	plain, err := sql.Open("sqlite", dsn) // only for the registered driver
	if err != nil {
		return nil, err
	}
	drv := plain.Driver()
	plain.Close()
	return sql.OpenDB(&stmtCacheConnector{dsn: dsn, drv: drv}), nil
}

func (c *stmtCacheConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

func (c *stmtCacheConnector) Driver() driver.Driver { return c.drv }

// sqliteConn is what database/sql uses of the SQLite driver's connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

// cachingConn is a SQLite connection with its statements cache.
type cachingConn struct {
	conn  driver.Conn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

// cachedStmt is a compiled statement; busy while rows of it are open, when
// a second use of its text compiles a statement of its own.
type cachedStmt struct {
	stmt driver.Stmt
	busy bool
}

// stmt returns the cached statement for query, marked busy, or nil when
// there is none free and no room for one; release must follow.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.stmts[query]
	if cs == nil {
		if len(c.stmts) >= maxCachedStmts {
			return nil, nil
		}
		st, err := c.conn.(sqliteConn).PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		cs = &cachedStmt{stmt: st}
		c.stmts[query] = cs
	}
	if cs.busy {
		return nil, nil
	}
	cs.busy = true
	return cs, nil
}

func (c *cachingConn) release(cs *cachedStmt) {
	c.mu.Lock()
	cs.busy = false
	c.mu.Unlock()
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.conn.(sqliteConn).ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.conn.(sqliteConn).QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &cachedRows{Rows: rows, release: func() { c.release(cs) }}, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.conn.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.conn.(sqliteConn).PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) { return c.conn.Begin() } //nolint:staticcheck // driver.Conn requires it

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.(sqliteConn).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close closes the cached statements, then the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	for q, cs := range c.stmts {
		cs.stmt.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return c.conn.Close()
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	once    sync.Once
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
