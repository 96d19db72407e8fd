package queue

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Concurrent submissions are grouped, each item lands in exactly one batch,
// and every caller returns only after its own batch ran.
func TestBatcherGroupsAndCompletesEveryItem(t *testing.T) {
	t.Parallel()
	var batches, items atomic.Int64
	seen := sync.Map{}
	var b batcher
	b.run = func(batch []*acceptItem) {
		batches.Add(1)
		for _, it := range batch {
			if _, dup := seen.LoadOrStore(it, true); dup {
				t.Errorf("item in two batches")
			}
			items.Add(1)
			it.id = 1
		}
		for _, it := range batch {
			close(it.done)
		}
	}
	var wg sync.WaitGroup
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it := &acceptItem{done: make(chan struct{})}
			b.submit(it)
			if it.id != 1 {
				t.Errorf("submit returned before its batch ran")
			}
		}()
	}
	wg.Wait()
	if items.Load() != 2000 {
		t.Fatalf("%d items run, want 2000", items.Load())
	}
	t.Logf("2000 submissions in %d batches", batches.Load())
}
