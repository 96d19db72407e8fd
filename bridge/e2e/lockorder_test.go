package e2e_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// Two processes sharing PostgreSQL accept webhooks for the same contacts in
// opposite orders, many at once, so their intake transactions hold several
// contacts each: they never deadlock (the intake locks contacts in one
// order), which PostgreSQL's own deadlock counter for the database shows.
func TestPostgresIntakeNeverDeadlocks(t *testing.T) {
	t.Parallel()
	dsn := testkit.PostgresDB(t, "hlbridge_e2e_")
	ctx := context.Background()
	var contacts []string
	for i := range 200 {
		contacts = append(contacts, fmt.Sprintf("lockOrder%04d", i))
	}
	var queues []*queue.Queue
	var stores []*queue.Store
	for range 2 {
		store, err := queue.OpenStore(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		q, err := queue.New(store, nil, queue.Config{}) // intake only, no workers
		if err != nil {
			t.Fatal(err)
		}
		stores, queues = append(stores, store), append(queues, q)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for p, q := range queues {
		order := slices.Clone(contacts)
		if p == 1 {
			slices.Reverse(order)
		}
		for w := range 32 {
			wg.Go(func() {
				for round := range 5 {
					for i := w; i < len(order); i += 32 {
						req := bridge.Request{Action: bridge.ActionUpdate, ContactID: order[(i+round*7)%len(order)]}
						if _, err := q.Dispatch(ctx, req, bridge.Delivery{}); err != nil {
							select {
							case errs <- err:
							default:
							}
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	for _, s := range stores {
		s.Close() // the backends exit and report their statistics
	}
	select {
	case err := <-errs:
		t.Fatalf("dispatch: %v", err)
	default:
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var events int
	if err := db.QueryRow(`SELECT COUNT(*) FROM hlbridge_event`).Scan(&events); err != nil || events != 2*5*len(contacts) {
		t.Fatalf("events stored = %d, %v; want %d", events, err, 2*5*len(contacts))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var deadlocks int64
		if err := db.QueryRow(`SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks); err != nil {
			t.Fatal(err)
		}
		if deadlocks > 0 {
			t.Fatalf("PostgreSQL counted %d deadlocks between the two processes' intakes", deadlocks)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(500 * time.Millisecond) // statistics arrive with a delay
	}
}
