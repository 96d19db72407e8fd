package bridge_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// errUnavailable stands for a 503 from HighLevel or WordPress: retryable.
var errUnavailable = &highlevel.APIError{Status: http.StatusServiceUnavailable, Message: "Service Unavailable"}

// flakyContacts fails the first password write to HighLevel.
type flakyContacts struct {
	bridge.Contacts
	failed atomic.Bool
}

func (f *flakyContacts) UpdateCustomFields(ctx context.Context, id string, fields []highlevel.FieldWrite) error {
	if f.failed.CompareAndSwap(false, true) {
		return errUnavailable
	}
	return f.Contacts.UpdateCustomFields(ctx, id, fields)
}

// When the generated password cannot reach HighLevel right after the user
// was created, the retry sets a fresh password and returns that one: what
// HighLevel holds is what logs in.
func TestReturnPasswordSurvivesFailure(t *testing.T) {
	t.Parallel()
	flaky := &flakyContacts{}
	b := setup(t, withQueue(fastQueue),
		withConfig(func(c *bridge.Config) { c.ReturnPasswordField = "wp_password" }),
		func(s *settings) {
			s.wrapHL = func(c bridge.Contacts) bridge.Contacts { flaky.Contacts = c; return flaky }
		})
	field := b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + randomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
	c := b.contact(t)
	_, r := b.wpf(t, "add", c.ID)
	ev := b.waitEvent(t, r.EventID, 30*time.Second)
	if ev.Status != bridge.StatusDone || ev.Attempts != 2 || !flaky.failed.Load() {
		t.Fatalf("event = %+v, want done on the second attempt", ev)
	}
	stored, _ := b.hl.Contact(c.ID)
	password, _ := stored.Custom(field.ID)
	if password == "" || !site.LoginWorks(t, wordpress.SanitizeLogin(c.Email), password) {
		t.Fatalf("the password HighLevel holds (%d characters) does not log in", len(password))
	}
	u := b.user(t, c.Email)
	if m := b.meta(t, u.ID, "hlbridge_pending_password"); m["hlbridge_pending_password"] != nil {
		t.Errorf("pending flag left behind: %v", m)
	}
	if ids, _ := b.wp.UsersByMeta(context.Background(), "highlevel_contact_id", c.ID); len(ids) != 1 {
		t.Errorf("users for the contact: %v", ids)
	}
}

// flakyNotify fails the first welcome notification.
type flakyNotify struct {
	bridge.Users
	failed atomic.Bool
	sent   atomic.Int64
}

func (f *flakyNotify) SendNewUserNotification(ctx context.Context, id int64, who wordpress.Notify) error {
	if f.failed.CompareAndSwap(false, true) {
		return &wordpress.Error{Op: "notify", Status: http.StatusServiceUnavailable, Message: "Service Unavailable"}
	}
	f.sent.Add(1)
	return f.Users.SendNewUserNotification(ctx, id, who)
}

// A welcome notification that fails after the user was created is sent by
// the retry, once.
func TestNotificationSurvivesFailure(t *testing.T) {
	t.Parallel()
	flaky := &flakyNotify{}
	b := setup(t, withQueue(fastQueue), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { flaky.Users = u; return flaky }
	})
	c := b.contact(t)
	_, r := b.wpf(t, "add", c.ID, "send_notification", "true")
	ev := b.waitEvent(t, r.EventID, 30*time.Second)
	if ev.Status != bridge.StatusDone || ev.Attempts != 2 {
		t.Fatalf("event = %+v, want done on the second attempt", ev)
	}
	m := site.WaitMail(t, c.Email, 10*time.Second)
	if !strings.Contains(m.Subject, "Login Details") || flaky.sent.Load() != 1 {
		t.Errorf("mail %q, notifications sent %d; want one Login Details", m.Subject, flaky.sent.Load())
	}
}
