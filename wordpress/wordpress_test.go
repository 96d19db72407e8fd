package wordpress_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/wordpress"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// site is the real WordPress these tests run against (see TestMain).
var site *wordpresstest.Site

func TestMain(m *testing.M) { wordpresstest.Main(m, &site) }

// newClient returns a client of the test site as its administrator, and
// the buffer its debug log goes to.
func newClient(t *testing.T) (*wordpress.Client, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	c, err := wordpress.New(wordpress.Config{URL: site.URL, Username: site.Username, AppPassword: site.AppPassword,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), site.AppPassword) {
			t.Errorf("the application password reached the client's log")
		}
	})
	return c, &logs
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// newUser creates a subscriber with a unique email and returns it.
func newUser(t *testing.T, c *wordpress.Client) *wordpress.User {
	t.Helper()
	email := wordpresstest.UniqueEmail(t)
	u, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-" + email, Roles: []string{"subscriber"}})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

func TestVerify(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	st, err := c.Verify(ctx(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if st.Plugin != "hlbridge-companion" || st.Version == "" || st.WordPress == "" {
		t.Errorf("companion status = %+v", st)
	}
	me, err := c.Me(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if me.Username != site.Username || !me.Can("create_users") || !me.HasRole("administrator") {
		t.Errorf("Me = %+v", me)
	}
}

// The companion tells how many users the site has and whether its user
// meta has an index on values, which "hlbridge check" advises on large
// sites; adding and dropping that index is seen at once.
func TestCompanionReportsMetaValueIndex(t *testing.T) {
	c, _ := newClient(t)
	status := func() *wordpress.CompanionStatus {
		t.Helper()
		st, err := c.Companion(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if st.MetaValueIndex == nil {
			t.Fatalf("companion %s reports no meta_value_index", st.Version)
		}
		return st
	}
	st := status()
	if st.Users < 1 || st.UsermetaTable != st.MetaPrefix+"usermeta" {
		t.Errorf("users %d, usermeta table %q; want at least the admin, %susermeta", st.Users, st.UsermetaTable, st.MetaPrefix)
	}
	if *st.MetaValueIndex {
		t.Fatalf("the test site's user meta has an index on values before the test added one")
	}
	const drop = `global $wpdb; $wpdb->query("ALTER TABLE {$wpdb->usermeta} DROP INDEX IF EXISTS hlbridge_test_meta_value");`
	site.Eval(t, `global $wpdb; if (false === $wpdb->query("ALTER TABLE {$wpdb->usermeta} ADD INDEX hlbridge_test_meta_value (meta_key(191), meta_value(32))")) { echo $wpdb->last_error; exit(1); }`)
	t.Cleanup(func() { site.Eval(t, drop) })
	if st := status(); !*st.MetaValueIndex {
		t.Errorf("meta_value_index false with an index on (meta_key, meta_value)")
	}
	site.Eval(t, drop)
	if st := status(); *st.MetaValueIndex {
		t.Errorf("meta_value_index true after the index was dropped")
	}
}

// On a single site nobody is a super admin, the administrator included
// (is_super_admin() alone would say yes to anyone who can delete_users).
func TestSuperAdminFieldOnSingleSite(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	me, err := c.Me(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if me.SuperAdmin || !me.HasRole("administrator") {
		t.Errorf("administrator of a single site: %+v, want SuperAdmin false", me)
	}
}

func TestVerifyWrongPassword(t *testing.T) {
	t.Parallel()
	const wrong = "abcd EFGH ijkl MNOP qrst UVWX"
	c, err := wordpress.New(wordpress.Config{URL: site.URL, Username: site.Username, AppPassword: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Verify(ctx(t))
	if !errors.Is(err, wordpress.ErrUnauthorized) {
		t.Fatalf("Verify with a wrong password: err = %v, want ErrUnauthorized", err)
	}
	if wordpress.Retryable(err) {
		t.Errorf("a refused password must not be retryable")
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), site.AppPassword) {
		t.Errorf("error carries a password: %v", err)
	}
}

func TestVerifyWithoutCapabilities(t *testing.T) {
	t.Parallel()
	login := wordpress.SanitizeLogin(strings.Split(wordpresstest.UniqueEmail(t), "@")[0])
	_, pass := site.CreateUserWithAppPassword(t, login, "subscriber")
	c, err := wordpress.New(wordpress.Config{URL: site.URL, Username: login, AppPassword: pass})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Verify(ctx(t))
	if !errors.Is(err, wordpress.ErrForbidden) || !strings.Contains(err.Error(), "create_users") {
		t.Fatalf("Verify as a subscriber: err = %v, want ErrForbidden naming create_users", err)
	}
	// A subscriber may not create users either: 403, final.
	email := wordpresstest.UniqueEmail(t)
	_, err = c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "x-123456"})
	if !errors.Is(err, wordpress.ErrForbidden) || wordpress.Retryable(err) {
		t.Fatalf("create as subscriber: err = %v, want final ErrForbidden", err)
	}
}

func TestCreateAndFindUser(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	email := wordpresstest.UniqueEmail(t)
	login := wordpress.SanitizeLogin("login-" + strings.Split(email, "@")[0])
	u, err := c.CreateUser(ctx(t), wordpress.NewUser{
		Username: login, Email: email, Password: "s3cret-Pass!", Roles: []string{"customer"},
		FirstName: "Ada", LastName: "Lovelace", Nickname: "ada", Name: "Ada L.",
		Description: "Analyst", URL: "https://ada.example.test",
	})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.ID == 0 || u.Username != login || u.Email != email || u.FirstName != "Ada" || u.LastName != "Lovelace" ||
		u.Nickname != "ada" || u.Name != "Ada L." || u.Description != "Analyst" || u.URL != "https://ada.example.test" ||
		len(u.Roles) != 1 || u.Roles[0] != "customer" {
		t.Fatalf("created user = %+v", u)
	}

	byID, err := c.UserByID(ctx(t), u.ID)
	if err != nil || byID.Email != email {
		t.Fatalf("UserByID = %+v, %v", byID, err)
	}
	byEmail, err := c.UserByEmail(ctx(t), strings.ToUpper(email))
	if err != nil || byEmail.ID != u.ID {
		t.Fatalf("UserByEmail (upper case) = %+v, %v", byEmail, err)
	}
	byLogin, err := c.UserByLogin(ctx(t), login)
	if err != nil || byLogin.ID != u.ID {
		t.Fatalf("UserByLogin = %+v, %v", byLogin, err)
	}
}

// WordPress's search is a substring match: the finders must not return a
// user whose email merely contains the one asked for.
func TestFindByEmailIsExact(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	email := wordpresstest.UniqueEmail(t)
	longer := "x" + email
	if _, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(longer), Email: longer, Password: "pw-123456"}); err != nil {
		t.Fatal(err)
	}
	if u, err := c.UserByEmail(ctx(t), email); !errors.Is(err, wordpress.ErrNotFound) {
		t.Fatalf("UserByEmail(%s) = %+v, %v; want ErrNotFound (only %s exists)", email, u, err, longer)
	}
	if u, err := c.UserByLogin(ctx(t), wordpress.SanitizeLogin(email)); !errors.Is(err, wordpress.ErrNotFound) {
		t.Fatalf("UserByLogin(%s) = %+v, %v; want ErrNotFound", email, u, err)
	}
	if _, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-123456"}); err != nil {
		t.Fatal(err)
	}
	u, err := c.UserByEmail(ctx(t), email)
	if err != nil || u.Email != email {
		t.Fatalf("UserByEmail(%s) = %+v, %v", email, u, err)
	}
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	u := newUser(t, c)
	newEmail := wordpresstest.UniqueEmail(t)
	up, err := c.UpdateUser(ctx(t), u.ID, wordpress.UserUpdate{
		Email: &newEmail, FirstName: new("Grace"), LastName: new("Hopper"), Roles: []string{"customer"},
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if up.Email != newEmail || up.FirstName != "Grace" || up.LastName != "Hopper" {
		t.Errorf("updated user = %+v", up)
	}
	if len(up.Roles) != 1 || up.Roles[0] != "customer" {
		t.Errorf("roles = %v, want exactly [customer] (roles are replaced as a set)", up.Roles)
	}
	// Fields left nil stay as they are.
	up, err = c.UpdateUser(ctx(t), u.ID, wordpress.UserUpdate{Nickname: new("gh")})
	if err != nil || up.FirstName != "Grace" || up.Email != newEmail || up.Nickname != "gh" {
		t.Fatalf("partial update = %+v, %v", up, err)
	}
	if _, err := c.UpdateUser(ctx(t), u.ID, wordpress.UserUpdate{Roles: []string{}}); err == nil {
		t.Error("an empty role set must be refused before it reaches WordPress")
	}
}

func TestTypedErrors(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	taken := newUser(t, c)
	fresh := wordpresstest.UniqueEmail(t)
	cases := []struct {
		name      string
		call      func() error
		want      error
		retryable bool
	}{
		{"duplicate email on create (a 500)", func() error {
			_, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin("other-" + fresh), Email: taken.Email, Password: "pw-123456"})
			return err
		}, wordpress.ErrDuplicateEmail, false},
		{"duplicate login", func() error {
			_, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: taken.Username, Email: fresh, Password: "pw-123456"})
			return err
		}, wordpress.ErrDuplicateLogin, false},
		{"unknown role", func() error {
			_, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin("role-" + fresh), Email: "role-" + fresh, Password: "pw-123456", Roles: []string{"no_such_role"}})
			return err
		}, wordpress.ErrInvalidRole, false},
		{"email of another user on update", func() error {
			other := newUser(t, c)
			_, err := c.UpdateUser(ctx(t), other.ID, wordpress.UserUpdate{Email: &taken.Email})
			return err
		}, wordpress.ErrInvalidEmail, false},
		{"unknown user", func() error {
			_, err := c.UserByID(ctx(t), 987654321)
			return err
		}, wordpress.ErrNotFound, false},
		{"unknown email", func() error {
			_, err := c.UserByEmail(ctx(t), "nobody-"+fresh)
			return err
		}, wordpress.ErrNotFound, false},
		{"update of unknown user", func() error {
			_, err := c.UpdateUser(ctx(t), 987654321, wordpress.UserUpdate{FirstName: new("x")})
			return err
		}, wordpress.ErrNotFound, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := wordpress.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tc.retryable)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	u := newUser(t, c)
	contactID := "ct" + strings.ReplaceAll(strings.Split(u.Email, "@")[0], ".", "")
	written, err := c.SetMeta(ctx(t), u.ID, map[string]wordpress.MetaValue{
		"hlbridge_test_unregistered": "plain value",
		"highlevel_tags":             []string{"vip", "course two"},
		"highlevel_contact_id":       contactID,
	})
	if err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	if written["hlbridge_test_unregistered"] != "plain value" {
		t.Errorf("SetMeta answered %v", written)
	}
	got, err := c.Meta(ctx(t), u.ID, "hlbridge_test_unregistered", "highlevel_tags", "never_set")
	if err != nil {
		t.Fatal(err)
	}
	if got["hlbridge_test_unregistered"] != "plain value" {
		t.Errorf("unregistered key = %#v", got["hlbridge_test_unregistered"])
	}
	if tags, ok := got["highlevel_tags"].([]string); !ok || len(tags) != 2 || tags[0] != "vip" || tags[1] != "course two" {
		t.Errorf("tags = %#v", got["highlevel_tags"])
	}
	if got["never_set"] != nil {
		t.Errorf("missing key = %#v, want nil", got["never_set"])
	}
	// Stored as WP Fusion stores it: a PHP-serialized array.
	if raw := site.UserMetaRaw(t, u.ID, "highlevel_tags"); raw != `a:2:{i:0;s:3:"vip";i:1;s:10:"course two";}` {
		t.Errorf("raw tags meta = %q", raw)
	}
	ids, err := c.UsersByMeta(ctx(t), "highlevel_contact_id", contactID)
	if err != nil || len(ids) != 1 || ids[0] != u.ID {
		t.Fatalf("UsersByMeta = %v, %v; want [%d]", ids, err, u.ID)
	}
	// nil deletes.
	if _, err := c.SetMeta(ctx(t), u.ID, map[string]wordpress.MetaValue{"hlbridge_test_unregistered": nil}); err != nil {
		t.Fatal(err)
	}
	got, err = c.Meta(ctx(t), u.ID, "hlbridge_test_unregistered")
	if err != nil || got["hlbridge_test_unregistered"] != nil {
		t.Fatalf("after delete: %v, %v", got, err)
	}
	if _, err := c.SetMeta(ctx(t), u.ID, map[string]wordpress.MetaValue{"bad": 42}); err == nil {
		t.Error("a value that is neither string, list nor nil must be refused")
	}
}

func TestProtectedMetaRefused(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	u := newUser(t, c)
	for i, key := range []string{"wp_capabilities", "wp_user_level", "_secret", "session_tokens",
		"wp_2_capabilities", "wp_2_user_level", "_application_passwords", "user_activation_key"} {
		t.Run(key, func(t *testing.T) {
			good := fmt.Sprintf("hlbridge_ok_%d", i)
			_, err := c.SetMeta(ctx(t), u.ID, map[string]wordpress.MetaValue{key: "administrator", good: "x"})
			if !errors.Is(err, wordpress.ErrProtectedMeta) || wordpress.Retryable(err) {
				t.Fatalf("SetMeta(%s): err = %v, want final ErrProtectedMeta", key, err)
			}
			got, err := c.Meta(ctx(t), u.ID, good)
			if err != nil || got[good] != nil {
				t.Errorf("a refused call wrote the other key: %v, %v", got, err)
			}
			if _, err := c.UsersByMeta(ctx(t), key, "x"); !errors.Is(err, wordpress.ErrProtectedMeta) {
				t.Errorf("UsersByMeta(%s): err = %v, want ErrProtectedMeta", key, err)
			}
		})
	}
	after, err := c.UserByID(ctx(t), u.ID)
	if err != nil || len(after.Roles) != 1 || after.Roles[0] != "subscriber" {
		t.Fatalf("user after refused writes = %+v, %v", after, err)
	}
}

// SendPendingNotification sends WordPress's own "Login Details" mail only
// while the flag is set, once.
func TestSendPendingNotification(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	u := newUser(t, c)
	const flag = "hlbridge_pending_notification"
	if sent, err := c.SendPendingNotification(ctx(t), u.ID, wordpress.NotifyUser, flag); err != nil || sent {
		t.Fatalf("without the flag: sent %v, %v; want false, nil", sent, err)
	}
	if _, err := c.SetMeta(ctx(t), u.ID, map[string]wordpress.MetaValue{flag: "1"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if sent, err := c.SendPendingNotification(ctx(t), u.ID, wordpress.NotifyUser, flag); err != nil || sent != want {
			t.Fatalf("call %d: sent %v, %v; want %v", i, sent, err, want)
		}
	}
	m := site.WaitMail(t, u.Email, 10*time.Second)
	if !strings.Contains(m.Subject, "Login Details") {
		t.Errorf("mail subject = %q, want WordPress's Login Details", m.Subject)
	}
	if !strings.Contains(m.Message, u.Username) {
		t.Errorf("mail does not name the login %q:\n%s", u.Username, m.Message)
	}
	n := 0
	for _, m := range site.Mails(t) {
		for _, to := range m.To {
			if strings.EqualFold(to, u.Email) {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d mails to the user, want 1", n)
	}
	if m, err := c.Meta(ctx(t), u.ID, flag); err != nil || m[flag] != nil {
		t.Errorf("flag after sending: %v, %v", m, err)
	}
	if _, err := c.SendPendingNotification(ctx(t), 987654321, wordpress.NotifyUser, flag); !errors.Is(err, wordpress.ErrNotFound) {
		t.Errorf("notify unknown user: err = %v, want ErrNotFound", err)
	}
}

// A plus-addressed email is a valid email but not a valid login: WordPress
// refuses it, and SanitizeLogin makes one it accepts.
func TestLoginFromPlusAddress(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	email := wordpresstest.UniqueEmail(t)
	if !strings.Contains(email, "+") {
		t.Fatalf("UniqueEmail %q has no plus: the test proves nothing", email)
	}
	_, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: email, Email: email, Password: "pw-123456"})
	if !errors.Is(err, wordpress.ErrInvalidUsername) || wordpress.Retryable(err) {
		t.Fatalf("create with login %q: err = %v, want final ErrInvalidUsername", email, err)
	}
	u, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-123456"})
	if err != nil {
		t.Fatalf("create with sanitized login: %v", err)
	}
	if u.Username != wordpress.SanitizeLogin(email) || u.Email != email {
		t.Errorf("user = %+v", u)
	}
}

// FindUser finds a contact's user in one request: the oldest linked one,
// else one by email (any case), else none; the answer is the user as
// UserByID reads it.
func TestFindUser(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	const key = "highlevel_contact_id"
	contact := "findUser" + strings.ReplaceAll(wordpresstest.UniqueEmail(t), "@", "")
	linked, other, byEmail := newUser(t, c), newUser(t, c), newUser(t, c)

	ids, u, err := c.FindUser(ctx(t), key, contact, "")
	if err != nil || len(ids) != 0 || u != nil {
		t.Fatalf("nothing linked, no email: %v, %+v, %v", ids, u, err)
	}
	ids, u, err = c.FindUser(ctx(t), key, contact, "  "+strings.ToUpper(byEmail.Email)+" ")
	if err != nil || len(ids) != 0 || u == nil || u.ID != byEmail.ID {
		t.Fatalf("by email in another case: %v, %+v, %v; want user %d", ids, u, err, byEmail.ID)
	}
	want, err := c.UserByID(ctx(t), byEmail.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("FindUser's user differs from UserByID's:\n%+v\n%+v", u, want)
	}
	if _, u, err = c.FindUser(ctx(t), key, contact, "nobody-"+byEmail.Email); err != nil || u != nil {
		t.Fatalf("an email that only contains another: %+v, %v; want none", u, err)
	}

	// Linked users win over the email, the oldest first.
	for _, id := range []int64{other.ID, linked.ID} {
		if _, err := c.SetMeta(ctx(t), id, map[string]wordpress.MetaValue{key: contact}); err != nil {
			t.Fatal(err)
		}
	}
	ids, u, err = c.FindUser(ctx(t), key, contact, byEmail.Email)
	if err != nil || !reflect.DeepEqual(ids, []int64{linked.ID, other.ID}) || u == nil || u.ID != linked.ID {
		t.Fatalf("two linked: %v, %+v, %v; want [%d %d] and user %d", ids, u, err, linked.ID, other.ID, linked.ID)
	}
	// Contact ids are case-sensitive, unlike MySQL's comparison.
	if ids, u, err = c.FindUser(ctx(t), key, strings.ToUpper(contact), ""); err != nil || len(ids) != 0 || u != nil {
		t.Fatalf("the contact id in another case: %v, %+v, %v; want none", ids, u, err)
	}
	if _, _, err := c.FindUser(ctx(t), "wp_capabilities", "x", ""); !errors.Is(err, wordpress.ErrProtectedMeta) {
		t.Errorf("a protected key: err = %v, want ErrProtectedMeta", err)
	}
}

func TestFindOrCreateUser(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	const key = "highlevel_contact_id"
	email := wordpresstest.UniqueEmail(t)
	contact := "findOrCreate" + strings.ReplaceAll(email, "@", "")
	nu := wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-" + email,
		Roles: []string{"subscriber"}, FirstName: "Ada", Meta: map[string]wordpress.MetaValue{key: contact}}

	ids, u, created, err := c.FindOrCreateUser(ctx(t), key, contact, nu)
	if err != nil || !created || u == nil || len(ids) != 0 {
		t.Fatalf("a new person: %v, %+v, %v, %v; want a user created", ids, u, created, err)
	}
	want, err := c.UserByID(ctx(t), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(u, want) || u.FirstName != "Ada" {
		t.Errorf("the user created differs from UserByID's:\n%+v\n%+v", u, want)
	}
	if m, err := c.Meta(ctx(t), u.ID, key); err != nil || m[key] != contact {
		t.Errorf("its contact link: %v, %v; want %s", m, err, contact)
	}

	again := nu
	again.Email, again.Username = "other-"+email, wordpress.SanitizeLogin("other-"+email)
	ids, found, created, err := c.FindOrCreateUser(ctx(t), key, contact, again)
	if err != nil || created || found == nil || found.ID != u.ID || !reflect.DeepEqual(ids, []int64{u.ID}) {
		t.Fatalf("the same contact again: %v, %+v, %v, %v; want user %d found", ids, found, created, err, u.ID)
	}
	if _, err := c.UserByEmail(ctx(t), again.Email); !errors.Is(err, wordpress.ErrNotFound) {
		t.Errorf("a user was found, yet one was created for %s: %v", again.Email, err)
	}

	taken := again
	taken.Username = nu.Username
	if _, _, _, err := c.FindOrCreateUser(ctx(t), key, contact+"-login", taken); !errors.Is(err, wordpress.ErrDuplicateLogin) {
		t.Errorf("a taken login: err = %v, want ErrDuplicateLogin", err)
	}
	protected := again
	protected.Meta = map[string]wordpress.MetaValue{"wp_capabilities": "x"}
	if _, _, _, err := c.FindOrCreateUser(ctx(t), key, contact+"-meta", protected); !errors.Is(err, wordpress.ErrProtectedMeta) {
		t.Errorf("a protected meta key: err = %v, want ErrProtectedMeta", err)
	}
	if _, err := c.UserByEmail(ctx(t), again.Email); !errors.Is(err, wordpress.ErrNotFound) {
		t.Errorf("a refused create made a user: %v", err)
	}
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	u := newUser(t, c)
	me, err := c.Me(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteUser(ctx(t), u.ID, me.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := c.UserByID(ctx(t), u.ID); !errors.Is(err, wordpress.ErrNotFound) {
		t.Fatalf("deleted user still found: %v", err)
	}
}

// The companion's hlbridge_meta field makes a user and its meta one request;
// a refused key refuses the whole request, so no user is left half made.
func TestCreateAndUpdateWithMeta(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	email := wordpresstest.UniqueEmail(t)
	_, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-123456",
		Meta: map[string]wordpress.MetaValue{"highlevel_contact_id": "x", "wp_capabilities": "a:1:{s:13:\"administrator\";b:1;}"}})
	if !errors.Is(err, wordpress.ErrProtectedMeta) {
		t.Fatalf("create with a protected meta key: err = %v, want ErrProtectedMeta", err)
	}
	if _, err := c.UserByEmail(ctx(t), email); !errors.Is(err, wordpress.ErrNotFound) {
		t.Fatalf("a refused create left a user: %v", err)
	}
	other := newUser(t, c)
	for _, key := range []string{"wp_2_capabilities", "_application_passwords", "session_tokens"} {
		_, err := c.UpdateUser(ctx(t), other.ID, wordpress.UserUpdate{FirstName: new("Mallory"),
			Meta: map[string]wordpress.MetaValue{key: "x"}})
		if !errors.Is(err, wordpress.ErrProtectedMeta) {
			t.Errorf("update with meta %s: err = %v, want ErrProtectedMeta", key, err)
		}
	}
	if after, err := c.UserByID(ctx(t), other.ID); err != nil || after.FirstName == "Mallory" {
		t.Errorf("a refused update changed the user: %+v, %v", after, err)
	}
	u, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-123456",
		Meta: map[string]wordpress.MetaValue{"highlevel_contact_id": "ctMeta1", "highlevel_tags": []string{"a", "b"}}})
	if err != nil {
		t.Fatalf("create with meta: %v", err)
	}
	if raw := site.UserMetaRaw(t, u.ID, "highlevel_tags"); raw != `a:2:{i:0;s:1:"a";i:1;s:1:"b";}` {
		t.Errorf("raw tags = %q", raw)
	}
	up, err := c.UpdateUser(ctx(t), u.ID, wordpress.UserUpdate{FirstName: new("Meta"),
		Meta: map[string]wordpress.MetaValue{"highlevel_tags": []string{"c"}, "highlevel_contact_id": nil}})
	if err != nil || up.FirstName != "Meta" {
		t.Fatalf("update with meta: %+v, %v", up, err)
	}
	got, err := c.Meta(ctx(t), u.ID, "highlevel_tags", "highlevel_contact_id")
	if err != nil {
		t.Fatal(err)
	}
	if tags, _ := got["highlevel_tags"].([]string); len(tags) != 1 || tags[0] != "c" || got["highlevel_contact_id"] != nil {
		t.Errorf("meta after update = %v", got)
	}
}

// With plain permalinks /wp-json/ answers the HTML home page; the client
// must find the REST API at ?rest_route= and work the same. A private site,
// since switching permalinks would disturb the tests sharing the main one.
func TestPlainPermalinks(t *testing.T) {
	t.Parallel()
	private, stop, err := wordpresstest.StartPrivate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	private.SetPrettyPermalinks(t, false)
	c, err := wordpress.New(wordpress.Config{URL: private.URL, Username: private.Username, AppPassword: private.AppPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx(t)); err != nil {
		t.Fatalf("Verify with plain permalinks: %v", err)
	}
	email := wordpresstest.UniqueEmail(t)
	u, err := c.CreateUser(ctx(t), wordpress.NewUser{Username: wordpress.SanitizeLogin(email), Email: email, Password: "pw-123456",
		Meta: map[string]wordpress.MetaValue{"highlevel_contact_id": "plainPermalinks1"}})
	if err != nil {
		t.Fatalf("create with plain permalinks: %v", err)
	}
	if found, err := c.UserByEmail(ctx(t), email); err != nil || found.ID != u.ID {
		t.Fatalf("UserByEmail = %+v, %v", found, err)
	}
	if ids, err := c.UsersByMeta(ctx(t), "highlevel_contact_id", "plainPermalinks1"); err != nil || len(ids) != 1 {
		t.Fatalf("UsersByMeta = %v, %v", ids, err)
	}
}
