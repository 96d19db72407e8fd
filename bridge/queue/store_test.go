package queue

import (
	"context"
	"path/filepath"
	"testing"
)

// openTestStore opens a SQLite store in a temp dir, closed when t ends.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	store, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "hlbridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// The SQLite store's connection runs with the settings the intake and the
// secrecy of deleted rows rely on: statement journals in memory (not in
// temp files holding copies of contacts' rows), deleted content
// overwritten, WAL without automatic checkpoints in a commit.
func TestSQLiteStoreSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openTestStore(t)
	for pragma, want := range map[string]string{
		"temp_store":         "2", // MEMORY
		"secure_delete":      "1",
		"journal_mode":       "wal",
		"synchronous":        "1", // NORMAL
		"wal_autocheckpoint": "0",
	} {
		var got string
		if err := store.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}
