package testkit

import (
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
)

// EnvPostgres names a PostgreSQL server for the tests (any database on it;
// they make throw-away ones). test.sh sets it.
const EnvPostgres = "HLBRIDGE_TEST_POSTGRES"

// PostgresDB creates a throw-away database, named prefix and a random
// suffix, on the server $HLBRIDGE_TEST_POSTGRES names, drops it when the
// test ends (after what the test started: cleanups run last registered
// first) and returns its URL. Without the variable it skips the test. The
// caller's binary must register database/sql's "pgx" driver (the store
// does).
func PostgresDB(t testing.TB, prefix string) string {
	t.Helper()
	server := os.Getenv(EnvPostgres)
	if server == "" {
		t.Skip("set " + EnvPostgres + " to a PostgreSQL URL to run this, e.g. " + EnvPostgres +
			"='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' (test.sh sets it; testdata/postgres/start.sh starts a server)")
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + strings.ToLower(RandomID(8))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("create database on %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	u.Path = "/" + name
	return u.String()
}
