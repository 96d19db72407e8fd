package queue

import (
	"context"
	"testing"

	"github.com/riverqueue/river"

	"github.com/hlbridge/hlbridge/bridge"
)

// A contact whose job River dropped (here: deleted) gets it back from the
// reconciler, and a contact whose job exists does not get a second one.
func TestReconcileRestoresMissingJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openTestStore(t)
	q, err := New(store, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"contactA", "contactB"} {
		for range 3 { // the second and third coalesce without a new job
			if _, err := q.Dispatch(ctx, bridge.Request{Action: bridge.ActionUpdate, ContactID: id}, bridge.Delivery{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobs, err := q.client.JobList(ctx, river.NewJobListParams().Kinds(syncContactArgs{}.Kind()))
	if err != nil || len(jobs.Jobs) != 2 {
		t.Fatalf("jobs = %d, %v; want one per contact", len(jobs.Jobs), err)
	}
	if n, err := q.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("Reconcile with every job in place = %d, %v; want 0", n, err)
	}
	if _, err := q.client.JobDelete(ctx, jobs.Jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Reconcile(ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile after a job was lost = %d, %v; want 1", n, err)
	}
	jobs, err = q.client.JobList(ctx, river.NewJobListParams().Kinds(syncContactArgs{}.Kind()))
	if err != nil || len(jobs.Jobs) != 2 {
		t.Fatalf("jobs after reconcile = %d, %v; want 2", len(jobs.Jobs), err)
	}
	// A job in a final state is no job: its contact's waiting work gets one.
	if _, err := store.db.ExecContext(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = datetime('now') WHERE id = ?`, jobs.Jobs[1].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Reconcile(ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile after a job was discarded = %d, %v; want 1", n, err)
	}
	if n, err := q.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("Reconcile again = %d, %v; want 0", n, err)
	}
}
