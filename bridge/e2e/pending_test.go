package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
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
// was created, the queue's retry returns it: what HighLevel holds is what
// logs in.
func TestReturnPasswordSurvivesFailure(t *testing.T) {
	t.Parallel()
	flaky := &flakyContacts{}
	b := setup(t, withQueue(fastQueue),
		withConfig(func(c *bridge.Config) { c.ReturnPasswordField = "wp_password" }),
		func(s *settings) {
			s.wrapHL = func(c bridge.Contacts) bridge.Contacts { flaky.Contacts = c; return flaky }
		})
	field := b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
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

func (f *flakyNotify) SendPendingNotification(ctx context.Context, id int64, who wordpress.Notify, flag string) (bool, error) {
	if f.failed.CompareAndSwap(false, true) {
		return false, &wordpress.Error{Op: "notify", Status: http.StatusServiceUnavailable, Message: "Service Unavailable"}
	}
	f.sent.Add(1)
	return f.Users.SendPendingNotification(ctx, id, who, flag)
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

// syncerFor builds a Syncer on the bundle's WordPress and fake HighLevel,
// returning the password to the custom field wp_password: a fresh Syncer
// stands for a new hlbridge process (after a crash), which remembers
// nothing of the one before.
func (b *bundle) syncerFor(t *testing.T, wrapHL func(bridge.Contacts) bridge.Contacts, mutate ...func(*bridge.Config)) *bridge.Syncer {
	t.Helper()
	return b.syncerWith(t, b.wp, wrapHL, mutate...)
}

// syncerWith is syncerFor with users standing for WordPress.
func (b *bundle) syncerWith(t *testing.T, users bridge.Users, wrapHL func(bridge.Contacts) bridge.Contacts, mutate ...func(*bridge.Config)) *bridge.Syncer {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hc := b.hl.Config()
	hc.Logger = logger
	hl, err := highlevel.New(hc)
	if err != nil {
		t.Fatal(err)
	}
	var contacts bridge.Contacts = hl
	if wrapHL != nil {
		contacts = wrapHL(hl)
	}
	cfg := bridge.Config{DefaultRole: "subscriber", TagsMetaKey: "highlevel_tags",
		ContactIDMetaKey: "highlevel_contact_id", ReturnPasswordField: "wp_password"}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := bridge.NewSyncer(cfg, users, contacts, logger)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// passwordField adds the custom field wp_password to the fake HighLevel.
func (b *bundle) passwordField() highlevel.CustomField {
	return b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
}

// passwordHash is the user's password hash as WordPress stores it: it
// changes exactly when the password is set.
func passwordHash(t *testing.T, userID int64) string {
	t.Helper()
	return site.Eval(t, `global $wpdb; echo $wpdb->get_var($wpdb->prepare("SELECT user_pass FROM {$wpdb->users} WHERE ID = %d", (int) $args[0]));`,
		strconv.FormatInt(userID, 10))
}

// mailCount counts the mails to email whose subject contains subject.
func mailCount(t *testing.T, email, subject string) int {
	t.Helper()
	n := 0
	for _, m := range site.Mails(t) {
		for _, to := range m.To {
			if strings.EqualFold(to, email) && strings.Contains(m.Subject, subject) {
				n++
			}
		}
	}
	return n
}

// returnedPassword is what HighLevel holds in the field, "" for nothing.
func (b *bundle) returnedPassword(contactID string, field highlevel.CustomField) string {
	c, _ := b.hl.Contact(contactID)
	v, _ := c.Custom(field.ID)
	return v
}

// A 429 or 5xx from HighLevel while the password is returned: the retry
// returns the same password. It resets nothing and sends no second Login
// Details; what HighLevel then holds logs in.
func TestReturnPasswordRetryKeepsPassword(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			field := b.passwordField()
			s := b.syncerFor(t, nil)
			c := b.contact(t)
			req := bridge.Request{Action: bridge.ActionAdd, ContactID: c.ID, SendNotification: true}
			b.hl.FailWrites(1, status, false)
			res, err := s.Apply(context.Background(), req)
			if err == nil || !bridge.Retryable(err) || !res.Created || !res.Notified {
				t.Fatalf("first attempt: %+v, %v; want a created, notified user and a retryable error", res, err)
			}
			before := passwordHash(t, res.UserID)
			res, err = s.Apply(context.Background(), req)
			if err != nil || !res.PasswordReturned || res.Notified {
				t.Fatalf("retry: %+v, %v; want the password returned and no notification", res, err)
			}
			if after := passwordHash(t, res.UserID); after != before {
				t.Errorf("the retry reset the password")
			}
			if pw := b.returnedPassword(c.ID, field); pw == "" || !site.LoginWorks(t, wordpress.SanitizeLogin(c.Email), pw) {
				t.Errorf("the password HighLevel holds (%d characters) does not log in", len(pw))
			}
			if n := mailCount(t, c.Email, "Login Details"); n != 1 {
				t.Errorf("%d Login Details mails, want 1", n)
			}
			if n := mailCount(t, c.Email, "Password Changed"); n != 0 {
				t.Errorf("%d Password Changed mails, want 0", n)
			}
			if m := b.meta(t, res.UserID, "hlbridge_pending_password", "hlbridge_pending_notification"); m["hlbridge_pending_password"] != nil || m["hlbridge_pending_notification"] != nil {
				t.Errorf("flags left behind: %v", m)
			}
		})
	}
}

// The password set at creation is lost with its process: the next process
// resets it once, and when returning that one fails too, its own retry
// returns it without another reset.
func TestReturnPasswordRecoveryResetsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	field := b.passwordField()
	c := b.contact(t)
	req := bridge.Request{Action: bridge.ActionAdd, ContactID: c.ID, SendNotification: true}
	b.hl.FailWrites(1, http.StatusServiceUnavailable, false)
	res, err := b.syncerFor(t, nil).Apply(context.Background(), req)
	if err == nil || !res.Created {
		t.Fatalf("first process: %+v, %v", res, err)
	}
	created := passwordHash(t, res.UserID)

	second := b.syncerFor(t, nil) // a new process: the first one's password is gone
	b.hl.FailWrites(1, http.StatusBadGateway, false)
	if _, err := second.Apply(context.Background(), req); err == nil || !bridge.Retryable(err) {
		t.Fatalf("second process: %v, want a retryable error", err)
	}
	reset := passwordHash(t, res.UserID)
	if reset == created {
		t.Fatalf("the second process did not reset the lost password")
	}
	res, err = second.Apply(context.Background(), req)
	if err != nil || !res.PasswordReturned {
		t.Fatalf("second process, retry: %+v, %v", res, err)
	}
	if passwordHash(t, res.UserID) != reset {
		t.Errorf("the retry reset the password a second time")
	}
	if pw := b.returnedPassword(c.ID, field); !site.LoginWorks(t, wordpress.SanitizeLogin(c.Email), pw) {
		t.Errorf("the password HighLevel holds does not log in")
	}
	if n := mailCount(t, c.Email, "Password Changed"); n != 1 {
		t.Errorf("%d Password Changed mails, want 1 (the one reset)", n)
	}
	if n := mailCount(t, c.Email, "Login Details"); n != 1 {
		t.Errorf("%d Login Details mails, want 1", n)
	}
}

// When the process that made the one recovery reset is lost too, hlbridge
// gives up: it says so once, on the event, and never touches the password
// again.
func TestReturnPasswordGivesUpAfterOneReset(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.passwordField()
	c := b.contact(t)
	req := bridge.Request{Action: bridge.ActionAdd, ContactID: c.ID}
	for range 2 { // the creating process, then the one that resets: both lost
		b.hl.FailWrites(1, http.StatusServiceUnavailable, false)
		if _, err := b.syncerFor(t, nil).Apply(context.Background(), req); err == nil || !bridge.Retryable(err) {
			t.Fatalf("want a retryable error, got %v", err)
		}
	}
	u := b.user(t, c.Email)
	reset := passwordHash(t, u.ID)
	third := b.syncerFor(t, nil)
	_, err := third.Apply(context.Background(), req)
	if !errors.Is(err, bridge.ErrRefused) || !strings.Contains(err.Error(), "at most once") {
		t.Fatalf("third process: %v, want a refusal saying a password is reset at most once", err)
	}
	for i := range 2 {
		if res, err := third.Apply(context.Background(), req); err != nil || res.PasswordReturned {
			t.Fatalf("later sync %d: %+v, %v; want done, nothing returned", i, res, err)
		}
	}
	if passwordHash(t, u.ID) != reset {
		t.Errorf("the password was reset again")
	}
	if n := mailCount(t, c.Email, "Password Changed"); n != 1 {
		t.Errorf("%d Password Changed mails, want 1", n)
	}
	if len(b.hl.Writes()) != 0 {
		t.Errorf("HighLevel got writes: %+v", b.hl.Writes())
	}
}

// capturingContacts remembers the values written to HighLevel's custom
// fields, so a test can look for them where they must not be.
type capturingContacts struct {
	bridge.Contacts
	mu     sync.Mutex
	values []string
}

func (c *capturingContacts) UpdateCustomFields(ctx context.Context, id string, fields []highlevel.FieldWrite) error {
	c.mu.Lock()
	for _, f := range fields {
		if v, ok := f.Value.(string); ok {
			c.values = append(c.values, v)
		}
	}
	c.mu.Unlock()
	return c.Contacts.UpdateCustomFields(ctx, id, fields)
}

// A return HighLevel refuses for good (no such field, a 4xx that is not a
// 429) is reported once, on the event, with the reason; the password is
// never touched again, and neither the event, the admin API nor the log
// holds it, even when HighLevel's error quotes the request.
func TestReturnPasswordPermanentFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		field  bool // the custom field exists
		status int  // HighLevel's answer to the write, 0 for success
		reason string
	}{
		{"unknown field", false, 0, `HighLevel has no custom field "wp_password"`},
		{"422 echoing the body", true, http.StatusUnprocessableEntity, "HighLevel refused the password"},
		{"400 echoing the body", true, http.StatusBadRequest, "HighLevel refused the password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			capture := &capturingContacts{}
			b := setup(t, withQueue(fastQueue), withConfig(func(c *bridge.Config) { c.ReturnPasswordField = "wp_password" }),
				func(s *settings) {
					s.wrapHL = func(c bridge.Contacts) bridge.Contacts { capture.Contacts = c; return capture }
				})
			if tc.field {
				b.passwordField()
			}
			if tc.status != 0 {
				b.hl.FailWrites(1, tc.status, true)
			}
			c := b.contact(t)
			_, r := b.wpf(t, "add", c.ID, "send_notification", "true")
			ev := b.waitEvent(t, r.EventID, 30*time.Second)
			if ev.Status != bridge.StatusRefused || ev.Attempts != 1 || !strings.Contains(ev.Error, tc.reason) {
				t.Fatalf("event = %+v, want refused at once with %q", ev, tc.reason)
			}
			u := b.user(t, c.Email)
			hash := passwordHash(t, u.ID)
			if m := b.meta(t, u.ID, "hlbridge_pending_password"); m["hlbridge_pending_password"] != nil {
				t.Errorf("pending flag left behind: %v", m)
			}
			// Later syncs succeed and leave the password alone.
			for range 2 {
				_, r := b.wpf(t, "add", c.ID)
				if ev := b.waitEvent(t, r.EventID, 30*time.Second); ev.Status != bridge.StatusDone {
					t.Fatalf("later sync: %+v", ev)
				}
			}
			if passwordHash(t, u.ID) != hash {
				t.Errorf("a later sync changed the password")
			}
			if n := mailCount(t, c.Email, "Password Changed"); n != 0 {
				t.Errorf("%d Password Changed mails", n)
			}
			if n := mailCount(t, c.Email, "Login Details"); n != 1 {
				t.Errorf("%d Login Details mails, want 1", n)
			}
			// Where the password must not be.
			capture.mu.Lock()
			secrets := slices.Clone(capture.values)
			capture.mu.Unlock()
			if tc.status != 0 && len(secrets) == 0 {
				t.Fatal("no password reached HighLevel: the test proves nothing")
			}
			places := map[string]string{"event": fmt.Sprintf("%+v", ev), "log": b.logs.String(),
				"admin answer": b.adminGet(t, fmt.Sprintf("/admin/events/%d", ev.ID)) + b.adminGet(t, "/admin/events?limit=100")}
			for _, secret := range secrets {
				for place, text := range places {
					if strings.Contains(text, secret) {
						t.Errorf("the password appears in the %s", place)
					}
				}
			}
		})
	}
}

// adminGet answers the admin API's GET path as text.
func (b *bundle) adminGet(t *testing.T, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// A return left pending when returning passwords is turned off is dropped
// by the next sync, which succeeds and leaves the password alone.
func TestPendingReturnDroppedWhenTurnedOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.passwordField()
	c := b.contact(t)
	req := bridge.Request{Action: bridge.ActionAdd, ContactID: c.ID}
	b.hl.FailWrites(1, http.StatusServiceUnavailable, false)
	res, err := b.syncerFor(t, nil).Apply(context.Background(), req)
	if err == nil || !res.Created {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	hash := passwordHash(t, res.UserID)
	off := b.syncerFor(t, nil, func(c *bridge.Config) { c.ReturnPasswordField = "" })
	if res, err := off.Apply(context.Background(), req); err != nil || res.PasswordReturned {
		t.Fatalf("sync with returning off: %+v, %v", res, err)
	}
	if passwordHash(t, res.UserID) != hash {
		t.Errorf("the password was reset")
	}
	if m := b.meta(t, res.UserID, "hlbridge_pending_password"); m["hlbridge_pending_password"] != nil {
		t.Errorf("pending flag left behind: %v", m)
	}
}

// lossyReset loses the first password reset hlbridge sends WordPress:
// either before it arrives, or by losing WordPress's answer after it took.
type lossyReset struct {
	bridge.Users
	arrives bool // the request reaches WordPress; only the answer is lost
	lost    atomic.Bool
	resets  atomic.Int64 // password updates sent to WordPress
}

func (l *lossyReset) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	if up.Password == nil {
		return l.Users.UpdateUser(ctx, id, up)
	}
	lose := l.lost.CompareAndSwap(false, true)
	if lose && !l.arrives {
		return nil, &wordpress.Error{Op: "update user", Status: http.StatusBadGateway, Message: "Bad Gateway"}
	}
	l.resets.Add(1)
	u, err := l.Users.UpdateUser(ctx, id, up)
	if lose {
		return nil, &wordpress.Error{Op: "update user", Err: context.DeadlineExceeded}
	}
	return u, err
}

// The recovery reset's own request fails. The retry in the same process
// reads from the flag whether WordPress took it: if not, it sends the same
// password again; if so, it only returns it. Either way the user's
// password changes once and HighLevel gets the one that logs in.
func TestReturnPasswordResetRequestFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		arrives    bool
		wantResets int64
	}{
		{"before WordPress", false, 1},
		{"answer lost", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			field := b.passwordField()
			c := b.contact(t)
			req := bridge.Request{Action: bridge.ActionAdd, ContactID: c.ID}
			b.hl.FailWrites(1, http.StatusServiceUnavailable, false)
			res, err := b.syncerFor(t, nil).Apply(context.Background(), req)
			if err == nil || !res.Created {
				t.Fatalf("first process: %+v, %v", res, err)
			}
			created := passwordHash(t, res.UserID)

			lossy := &lossyReset{Users: b.wp, arrives: tc.arrives}
			second := b.syncerWith(t, lossy, nil)
			if _, err := second.Apply(context.Background(), req); err == nil || !bridge.Retryable(err) {
				t.Fatalf("second process: %v, want a retryable error", err)
			}
			res, err = second.Apply(context.Background(), req)
			if err != nil || !res.PasswordReturned {
				t.Fatalf("second process, retry: %+v, %v", res, err)
			}
			if passwordHash(t, res.UserID) == created {
				t.Errorf("the password was never reset")
			}
			if n := lossy.resets.Load(); n != tc.wantResets {
				t.Errorf("%d password updates reached WordPress, want %d", n, tc.wantResets)
			}
			if n := mailCount(t, c.Email, "Password Changed"); n != 1 {
				t.Errorf("%d Password Changed mails, want 1", n)
			}
			if pw := b.returnedPassword(c.ID, field); !site.LoginWorks(t, wordpress.SanitizeLogin(c.Email), pw) {
				t.Errorf("the password HighLevel holds does not log in")
			}
		})
	}
}
