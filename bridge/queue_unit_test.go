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
	cases := []struct {
		name   string
		a, b   *Request
		action Action
		notify bool
		role   string
	}{
		{"add absorbs update", add, upd, ActionAdd, true, "customer"},
		{"update then add", upd, add, ActionAdd, true, "customer"},
		{"update absorbs update_tags, later role wins", upd, tags, ActionUpdate, false, "member"},
		{"nil earlier", nil, tags, ActionUpdateTags, false, "member"},
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
