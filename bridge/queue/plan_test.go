package queue

import (
	"context"
	"strings"
	"testing"
)

// The statements that find a contact's settling job run on every
// webhook of a storm that coalesces: they must use the contact index, not
// scan the backlog of available jobs.
func TestSettlingJobLookupsUseTheContactIndex(t *testing.T) {
	ctx := context.Background()
	store := openTestStore(t)
	x := newIntakeSQL(store)
	for name, query := range map[string]string{"sync now": x.syncNow, "settle later": x.settleLater} {
		args := []any{"c1"}
		if query == x.settleLater {
			args = []any{store.interval(1), store.interval(10), "c1"}
		}
		rows, err := store.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		t.Logf("%s: %s", name, got)
		if !strings.Contains(got, "hlbridge_river_job_contact") {
			t.Errorf("%s: plan %q does not use the index hlbridge_river_job_contact", name, got)
		}
	}
}
