package queue

import (
	"context"
	"path/filepath"
	"testing"
)

// A query's text compiles once per connection; the same text run while rows
// of it are still open (a nested loop) runs on a statement of its own, and
// both give every row.
func TestStmtCacheReusesAndNests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := openCachingSQLite("file:" + filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	const query = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	sum := func(min int) (int, error) {
		rows, err := tx.QueryContext(ctx, query, min)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var x int
			if err := rows.Scan(&x); err != nil {
				return 0, err
			}
			n += x
		}
		return n, rows.Err()
	}
	outer, err := tx.QueryContext(ctx, query, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var x int
		if err := outer.Scan(&x); err != nil {
			t.Fatal(err)
		}
		inner, err := sum(x) // the same text, while outer's rows are open
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, inner)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []int{6, 5, 3}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("nested sums %v, want %v", got, want)
	}
	for range 3 { // the cached statement again, reset after each use
		if n, err := sum(2); err != nil || n != 5 {
			t.Fatalf("sum(2) = %d, %v; want 5", n, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?)`, 4); err != nil {
		t.Fatal(err)
	}
	if n, err := sum(4); err != nil || n != 4 {
		t.Fatalf("sum(4) after an insert = %d, %v; want 4", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Raw(func(dc any) error {
		c := dc.(*cachingConn)
		if _, ok := c.stmts[query]; !ok || len(c.stmts) > 3 {
			t.Errorf("cached %d statements, want the query's among at most 3", len(c.stmts))
		}
		for q, cs := range c.stmts {
			if cs.busy {
				t.Errorf("statement %q still busy", q)
			}
		}
		return nil
	})
}
