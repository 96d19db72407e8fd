package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// These tests prove the membership lifecycle (README: "Memberships"),
// against the real WordPress: roles from tags, deactivation, and the
// set-password link.

// memberRoles creates a gold and a silver role, unique to the test, and
// returns their names.
func memberRoles(t *testing.T) (gold, silver string) {
	t.Helper()
	suffix := strings.ToLower(testkit.RandomID(6))
	gold, silver = "gold_member_"+suffix, "silver_member_"+suffix
	site.AddRole(t, gold, "read")
	site.AddRole(t, silver, "read")
	return gold, silver
}

func withRoleRules(t *testing.T, gold, silver string) option {
	return withConfig(func(c *bridge.Config) {
		c.AllowedRoles = []string{"customer", gold, silver}
		rules, err := bridge.ParseRoleRules("GOLD=" + gold + ", silver=" + silver)
		if err != nil {
			t.Fatal(err)
		}
		c.RoleRules = rules
	})
}

func sortedRoles(r []string) []string { r = slices.Clone(r); slices.Sort(r); return r }

// A contact that gains the gold tag becomes a gold member on the next sync,
// whatever the action; losing it sends the user back to the default role;
// an explicit role= wins for its own sync only.
func TestRoleRules(t *testing.T) {
	t.Parallel()
	gold, silver := memberRoles(t)
	b := setup(t, withRoleRules(t, gold, silver))
	c := b.contact(t, func(c *highlevel.Contact) { c.Tags = []string{"lead"} })
	step := func(what string, tags []string, action string, extra []string, want ...string) {
		t.Helper()
		c.Tags = tags
		b.hl.PutContact(c)
		if status, r := b.wpf(t, action, c.ID, extra...); status != http.StatusOK {
			t.Fatalf("%s: %s: %d %+v", what, action, status, r)
		}
		if got := b.user(t, c.Email).Roles; !slices.Equal(sortedRoles(got), sortedRoles(want)) {
			t.Errorf("%s: roles %v, want %v", what, got, want)
		}
	}
	step("new contact without a member tag", []string{"lead"}, "add", nil, "subscriber")
	step("gains gold (the API lower-cases tags; the rule says GOLD)", []string{"lead", "gold"}, "update_tags", nil, gold)
	step("gold and silver: the first rule wins", []string{"silver", "gold"}, "update", nil, gold)
	step("loses gold", []string{"silver"}, "update_tags", nil, silver)
	step("an explicit role= wins for its sync", []string{"silver"}, "update", []string{"role", "customer"}, "customer")
	step("the next sync follows the rules again", []string{"silver"}, "update_tags", []string{"role", "customer"}, silver)
	step("loses every member tag", nil, "update", nil, "subscriber")

	// A new contact that carries gold is created a gold member.
	n := b.contact(t, func(c *highlevel.Contact) { c.Tags = []string{"gold"} })
	if status, r := b.wpf(t, "add", n.ID); status != http.StatusOK || !r.Result.Created {
		t.Fatalf("add gold contact: %d %+v", status, r)
	}
	if got := b.user(t, n.Email).Roles; !slices.Equal(got, []string{gold}) {
		t.Errorf("new gold contact: roles %v", got)
	}
}

// A user holding a role outside the allowed set keeps it: the rules swap
// only the allowed roles.
func TestRoleRulesKeepOtherRoles(t *testing.T) {
	t.Parallel()
	gold, silver := memberRoles(t)
	b := setup(t, withRoleRules(t, gold, silver))
	c := b.contact(t, func(c *highlevel.Contact) { c.Tags = []string{"gold"} })
	id := site.CreateUser(t, c.Email, "author")
	if status, r := b.wpf(t, "update", c.ID); status != http.StatusOK {
		t.Fatalf("update: %d %+v", status, r)
	}
	u := b.user(t, c.Email)
	if u.ID != id || !slices.Equal(sortedRoles(u.Roles), sortedRoles([]string{"author", gold})) {
		t.Errorf("author with gold: user %d roles %v, want author and %s", u.ID, u.Roles, gold)
	}
	c.Tags = nil
	b.hl.PutContact(c)
	if status, r := b.wpf(t, "update_tags", c.ID); status != http.StatusOK {
		t.Fatalf("update_tags: %d %+v", status, r)
	}
	if got := b.user(t, c.Email).Roles; !slices.Equal(sortedRoles(got), []string{"author", "subscriber"}) {
		t.Errorf("author without gold: roles %v, want author and subscriber", got)
	}
}

// withDeactivation runs the bridge with policy on ContactDelete (and tag,
// if any), trusting verifier's app events.
func withDeactivation(policy bridge.Deactivation, reassign int64, tag string, verifier *highlevel.Verifier) option {
	return func(s *settings) {
		s.cfg.OnContactDelete, s.cfg.ReassignUser, s.cfg.DeactivateTag = policy, reassign, tag
		s.verifier = verifier
	}
}

// post creates a published post by user id and returns its id.
func post(t *testing.T, userID int64) int64 {
	t.Helper()
	out := site.Eval(t, `$id = wp_insert_post(array('post_title' => 'by a member', 'post_status' => 'publish', 'post_author' => (int) $args[0]), true);
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
echo $id;`, strconv.FormatInt(userID, 10))
	id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("post: %q", out)
	}
	return id
}

func postAuthor(t *testing.T, postID int64) string {
	t.Helper()
	return strings.TrimSpace(site.Eval(t, `$p = get_post((int) $args[0]); echo $p ? $p->post_author : 'none';`, strconv.FormatInt(postID, 10)))
}

// A signed ContactDelete applies BRIDGE_ON_CONTACT_DELETE to the user
// linked to the contact, and says what it did.
func TestContactDeleteDeactivates(t *testing.T) {
	t.Parallel()
	reassign := site.CreateUser(t, wordpresstest.UniqueEmail(t), "author")
	cases := []struct {
		policy bridge.Deactivation
		want   string
		check  func(t *testing.T, b *bundle, id int64, postID int64)
	}{
		{bridge.DeactivateUnlink, "unlinked", func(t *testing.T, b *bundle, id, _ int64) {
			u, err := b.wp.UserByID(context.Background(), id)
			if err != nil || !slices.Equal(u.Roles, []string{"author", "customer"}) && !slices.Equal(u.Roles, []string{"customer", "author"}) {
				t.Errorf("unlinked user: %+v %v, want its roles kept", u, err)
			}
			if m := b.meta(t, id, "highlevel_contact_id", "highlevel_tags"); m["highlevel_contact_id"] != nil || m["highlevel_tags"] == nil {
				t.Errorf("unlinked user's meta: %v, want the contact id gone and the tags kept", m)
			}
		}},
		{bridge.DeactivateStripRoles, "roles_stripped", func(t *testing.T, b *bundle, id, _ int64) {
			u, err := b.wp.UserByID(context.Background(), id)
			if err != nil || !slices.Equal(u.Roles, []string{"author"}) {
				t.Errorf("stripped user: %+v %v, want only author left", u, err)
			}
		}},
		{bridge.DeactivateDelete, "deleted", func(t *testing.T, b *bundle, id, postID int64) {
			if _, err := b.wp.UserByID(context.Background(), id); !errors.Is(err, wordpress.ErrNotFound) {
				t.Errorf("deleted user: %v, want not found", err)
			}
			if got := postAuthor(t, postID); got != strconv.FormatInt(reassign, 10) {
				t.Errorf("the deleted user's post belongs to %s, want %d", got, reassign)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			signer, verifier := newAppSigner(t)
			b := setup(t, withDeactivation(tc.policy, reassign, "", verifier))
			c := b.contact(t)
			id := site.CreateUser(t, c.Email, "author")
			if status, r := b.wpf(t, "add", c.ID, "role", "customer"); status != http.StatusOK || r.Result.UserID != id {
				t.Fatalf("add: %d %+v", status, r)
			}
			postID := post(t, id)
			b.hl.DeleteContact(c.ID)
			status, r := signer.post(t, b, appEvent(highlevel.EventContactDelete, c.ID, b.hl.LocationID), "")
			if status != http.StatusOK || r.Result.Deactivated != tc.want || r.Result.UserID != id {
				t.Fatalf("ContactDelete: %d %+v, want deactivated %s", status, r, tc.want)
			}
			tc.check(t, b, id, postID)
			// Again (HighLevel's retry after a lost answer is a new
			// delivery only if its webhookId differs): nothing more happens.
			status, r = signer.post(t, b, appEvent(highlevel.EventContactDelete, c.ID, b.hl.LocationID), "")
			if status != http.StatusOK || r.Result.Changed != nil {
				t.Errorf("second ContactDelete: %d %+v, want nothing changed", status, r)
			}
		})
	}
}

// An administrator linked to a deleted contact is never deactivated: the
// event is refused with the reason and nothing changes.
func TestContactDeleteNeverTouchesAdministrators(t *testing.T) {
	t.Parallel()
	reassign := site.CreateUser(t, wordpresstest.UniqueEmail(t), "author")
	signer, verifier := newAppSigner(t)
	b := setup(t, withDeactivation(bridge.DeactivateDelete, reassign, "", verifier), withQueue(fastQueue))
	c := b.contact(t)
	admin := site.CreateUser(t, c.Email, "administrator")
	if _, err := b.wp.SetMeta(context.Background(), admin, map[string]wordpress.MetaValue{"highlevel_contact_id": c.ID}); err != nil {
		t.Fatal(err)
	}
	before := b.state(t, admin)
	status, r := signer.post(t, b, appEvent(highlevel.EventContactDelete, c.ID, b.hl.LocationID), "")
	if status != http.StatusAccepted {
		t.Fatalf("ContactDelete: %d %+v", status, r)
	}
	e := b.waitEvent(t, r.EventID, 30*time.Second)
	if e.Status != bridge.StatusRefused || e.Action != bridge.ActionDeactivate || !strings.Contains(e.Error, "administrator") {
		t.Errorf("event = %+v, want a refused deactivate naming the administrator", e)
	}
	sameState(t, before, b.state(t, admin))
}

// A contact that carries the deactivation tag is deactivated by any sync
// instead of updated, and never gets a user.
func TestDeactivationTag(t *testing.T) {
	t.Parallel()
	b := setup(t, withDeactivation(bridge.DeactivateStripRoles, 0, "cancelled", nil))
	c := b.contact(t)
	if status, r := b.wpf(t, "add", c.ID, "role", "customer"); status != http.StatusOK {
		t.Fatalf("add: %d %+v", status, r)
	}
	c.Tags, c.FirstName = []string{"Cancelled"}, "Renamed"
	b.hl.PutContact(c)
	status, r := b.wpf(t, "update_tags", c.ID)
	if status != http.StatusOK || r.Result.Deactivated != "roles_stripped" {
		t.Fatalf("update_tags with the tag: %d %+v\n%s", status, r, b.logs.String())
	}
	if u := b.user(t, c.Email); len(u.Roles) != 0 || u.FirstName != "Ada" {
		t.Errorf("deactivated user: roles %v, first name %q; want no role, nothing else changed", u.Roles, u.FirstName)
	}
	other := b.contact(t, func(c *highlevel.Contact) { c.Tags = []string{"cancelled"} })
	if status, r := b.wpf(t, "add", other.ID); status != http.StatusOK || r.Result.Deactivated != "no_user" || r.Result.Created {
		t.Fatalf("add with the tag: %d %+v", status, r)
	}
	if _, err := b.wp.UserByEmail(context.Background(), other.Email); !errors.Is(err, wordpress.ErrNotFound) {
		t.Errorf("an add of a deactivated contact made a user: %v", err)
	}
}

// A new user's set-password link reaches HighLevel: it opens WordPress's
// reset form for that user, a password set through it logs in, and the
// link is in no log line and no stored event. It goes out once per new
// user, next to the password return.
func TestReturnLoginLink(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue), withConfig(func(c *bridge.Config) {
		c.ReturnLoginLinkField, c.ReturnPasswordField = "wp_login_link", "wp_password"
	}))
	linkField := b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Login Link", FieldKey: "contact.wp_login_link"})
	b.hl.AddCustomField(highlevel.CustomField{ID: "cf" + testkit.RandomID(12), Name: "WP Password", FieldKey: "contact.wp_password"})
	c := b.contact(t)
	status, r := b.wpf(t, "add", c.ID, "sync", "true")
	if status != http.StatusOK || !r.Result.Created || !r.Result.LoginLinkReturned || !r.Result.PasswordReturned {
		t.Fatalf("add: %d %+v", status, r)
	}
	stored, _ := b.hl.Contact(c.ID)
	link, _ := stored.Custom(linkField.ID)
	u := b.user(t, c.Email)
	want := site.URL + "/wp-login.php?action=rp&key="
	if !strings.HasPrefix(link, want) || !strings.HasSuffix(link, "&login="+url.QueryEscape(u.Username)) {
		t.Fatalf("HighLevel received %q, want %s…&login=%s", link, want, u.Username)
	}
	key := strings.TrimPrefix(strings.Split(link, "&login=")[0], want)

	// Nothing of it in the log or the stored event.
	e := b.waitEvent(t, r.EventID, 30*time.Second)
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"log": b.logs.String(), "stored event": string(raw)} {
		if strings.Contains(text, key) {
			t.Errorf("the login link's key reached the %s", what)
		}
	}
	if m := b.meta(t, u.ID, "hlbridge_pending_login_link"); m["hlbridge_pending_login_link"] != nil {
		t.Errorf("pending link flag still set: %v", m)
	}

	// A second sync makes no new link.
	writes := len(b.hl.Writes())
	if status, r := b.wpf(t, "add", c.ID, "sync", "true"); status != http.StatusOK || r.Result.LoginLinkReturned {
		t.Fatalf("second add: %d %+v", status, r)
	}
	if len(b.hl.Writes()) != writes {
		t.Errorf("a second add wrote to HighLevel again")
	}

	// The link works as WordPress's own: it opens the reset form, and the
	// password chosen there logs in.
	chosen := "Chosen-" + testkit.RandomID(16)
	if err := site.SetPasswordThroughLink(link, chosen); err != nil {
		t.Fatalf("set a password through the link: %v", err)
	}
	if !site.LoginWorks(t, u.Username, chosen) {
		t.Errorf("the password set through the link does not log in")
	}
	// WordPress spends the key: the link works once.
	if err := site.SetPasswordThroughLink(link, "Another-"+testkit.RandomID(16)); err == nil {
		t.Errorf("the link worked twice")
	}
}
