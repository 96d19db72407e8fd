package wordpress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The pace keeps one baseline per kind of answer: a find-or-create that
// found the user (200) and one that created it (201) are different work.
// A small server stands in for the site: what is tested is the client's
// bookkeeping, not WordPress.
func TestPaceKindsByStatus(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/wp-json/" {
			w.Write([]byte(`{"namespaces":["wp/v2","hlbridge/v1"]}`))
			return
		}
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"users":[],"user":{"id":7},"created":true}`))
			return
		}
		w.Write([]byte(`{"users":[7],"user":{"id":7},"created":false}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Username: "admin", AppPassword: "not-used-here", MaxConcurrent: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		_, u, created, err := c.FindOrCreateUser(ctx, "highlevel_contact_id", "c1", NewUser{Username: "a", Email: "a@example.test", Password: "x"})
		if err != nil || u == nil || u.ID != 7 || created != (i%2 == 0) {
			t.Fatalf("call %d: %+v, %v, %v", i, u, created, err)
		}
	}
	c.pace.mu.Lock()
	var kinds []string
	for k := range c.pace.kinds {
		kinds = append(kinds, k)
	}
	c.pace.mu.Unlock()
	slices.Sort(kinds)
	want := []string{"GET / 200", "POST /hlbridge/v#/users 200", "POST /hlbridge/v#/users 201"} // routeKind drops digits
	if !slices.Equal(kinds, want) {
		t.Errorf("pace kinds = %q, want %q", kinds, want)
	}
}

// A write's check runs once the write has its place, not before it waits:
// a write that waited behind another while its check turned false is not
// sent. A read is never checked.
func TestWriteCheckAfterTheWait(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var writes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/wp-json/":
			w.Write([]byte(`{"namespaces":["wp/v2","hlbridge/v1"]}`))
		case r.Method == http.MethodGet:
			once.Do(func() {
				close(entered)
				<-release // the first read holds the one place in flight
			})
			w.Write([]byte(`{"id":7}`))
		default:
			writes.Add(1)
			w.Write([]byte(`{"id":7}`))
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Username: "admin", AppPassword: "not-used-here", MaxConcurrent: 1, FixedConcurrency: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var fenced atomic.Bool
	errFenced := errors.New("fenced")
	ctx := WithWriteCheck(context.Background(), func() error {
		if fenced.Load() {
			return errFenced
		}
		return nil
	})
	readDone := make(chan error, 1)
	go func() { _, err := c.UserByID(ctx, 7); readDone <- err }()
	<-entered
	name := "Ada"
	writeDone := make(chan error, 1)
	go func() { _, err := c.UpdateUser(ctx, 7, UserUpdate{FirstName: &name}); writeDone <- err }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.pace.mu.Lock()
		waiting := c.pace.waiters.Len()
		c.pace.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never waited for a place")
		}
	}
	fenced.Store(true) // the check passed when the write was asked for; it fails now
	close(release)
	if err := <-readDone; err != nil {
		t.Fatalf("the read: %v", err)
	}
	if err := <-writeDone; !errors.Is(err, errFenced) {
		t.Errorf("the write that waited: err = %v, want the check's error", err)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("%d writes reached the site after the check failed", n)
	}
	if _, err := c.UserByID(ctx, 7); err != nil {
		t.Errorf("a read with a failing check: %v, want it sent", err)
	}
}
