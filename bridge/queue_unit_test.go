package bridge

import (
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	add := &Request{Action: ActionAdd, ContactID: "c", SendNotification: true, Role: "customer"}
	upd := &Request{Action: ActionUpdate, ContactID: "c"}
	tags := &Request{Action: ActionUpdateTags, ContactID: "c", Role: "member"}
	updRole := &Request{Action: ActionUpdate, ContactID: "c", Role: "member"}
	addBare := &Request{Action: ActionAdd, ContactID: "c"}
	cases := []struct {
		name   string
		a, b   *Request
		action Action
		notify bool
		role   string
	}{
		{"add absorbs update", add, upd, ActionAdd, true, "customer"},
		{"update then add", upd, add, ActionAdd, true, "customer"},
		{"later role wins", add, updRole, ActionAdd, true, "member"},
		// update_tags never changes roles: its role= is not carried.
		{"update absorbs update_tags without its role", upd, tags, ActionUpdate, false, ""},
		{"add keeps its role over a later update_tags", add, tags, ActionAdd, true, "customer"},
		{"update_tags's role is not carried into a later add", tags, addBare, ActionAdd, false, ""},
		{"nil earlier", nil, updRole, ActionUpdate, false, "member"},
		{"nil later", add, nil, ActionAdd, true, "customer"},
	}
	for _, tc := range cases {
		m := Merge(tc.a, tc.b)
		if m.Action != tc.action || m.SendNotification != tc.notify || m.Role != tc.role {
			t.Errorf("%s: got %+v", tc.name, m)
		}
	}
	if add.Action != ActionAdd || upd.Action != ActionUpdate {
		t.Error("Merge changed its inputs")
	}
}

// The retry schedule keeps trying for at least a day, and not forever.
func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	b := backoff{base: 2 * time.Second}
	var total time.Duration
	for attempt := 1; attempt < 60; attempt++ {
		d := b.delay(attempt)
		if d > maxBackoff {
			t.Fatalf("attempt %d waits %s, over the cap", attempt, d)
		}
		total += d
	}
	if total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("60 attempts span %s, want a little over a day", total)
	}
	if b.delay(1) != 2*time.Second || b.delay(2) != 4*time.Second {
		t.Errorf("first delays %s, %s", b.delay(1), b.delay(2))
	}
}
