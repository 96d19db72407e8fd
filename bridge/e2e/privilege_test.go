package e2e_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// These tests prove, against the real WordPress, the rules that keep a
// webhook from becoming a path to privilege (README: "Rules that protect the
// site"): users who can run the site are never changed, role= never demotes,
// and update_tags never changes roles.

// protectedCapabilities is the list the README promises, written out here
// rather than read from the bridge, so that dropping one there fails a test.
var protectedCapabilities = []string{
	"manage_options", "edit_users", "promote_users", "manage_network", "delete_users", "create_users",
	"activate_plugins", "install_plugins", "edit_plugins", "edit_theme_options", "unfiltered_html",
}

// userState is what a sync could change on a user.
type userState struct {
	user wordpress.User
	meta map[string]wordpress.MetaValue
}

// state reads what a sync could change on user id.
func (b *bundle) state(t *testing.T, id int64) userState {
	t.Helper()
	u, err := b.wp.UserByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return userState{user: *u, meta: b.meta(t, id, "highlevel_tags", "highlevel_contact_id", "company")}
}

// sameState fails t unless nothing a sync writes differs between before and after.
func sameState(t *testing.T, before, after userState) {
	t.Helper()
	bu, au := before.user, after.user
	if au.Email != bu.Email || au.FirstName != bu.FirstName || au.LastName != bu.LastName ||
		au.Nickname != bu.Nickname || au.Name != bu.Name || !slices.Equal(au.Roles, bu.Roles) {
		t.Errorf("user %d changed:\nbefore %+v\nafter  %+v", bu.ID, bu, au)
	}
	for k, v := range before.meta {
		if !metaSame(after.meta[k], v) {
			t.Errorf("user %d: meta %s changed from %#v to %#v", bu.ID, k, v, after.meta[k])
		}
	}
}

func metaSame(a, b wordpress.MetaValue) bool {
	al, aok := a.([]string)
	bl, bok := b.([]string)
	if aok || bok {
		return aok && bok && slices.Equal(al, bl)
	}
	return a == b
}

// refusedWith fails t unless the webhook was refused (422) with a reason
// that contains want.
func refusedWith(t *testing.T, what string, status int, r reply, want string) {
	t.Helper()
	if status != http.StatusUnprocessableEntity || r.Status != "refused" || !strings.Contains(r.Error, want) {
		t.Errorf("%s: %d %+v, want 422 refused naming %q", what, status, r, want)
	}
}

// Every webhook that would touch a user holding one protected capability
// is refused, whether the user is found by email or by its contact link,
// whatever role= or field map asks for; and nothing is written.
func TestProtectedCapabilityHoldersAreNeverChanged(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *bridge.Config) {
		var err error
		// More than names: a refused sync must write none of it.
		if c.FieldMap, err = bridge.ParseFieldMap("first_name=firstName,last_name=lastName,nickname=companyName,display_name=firstName,meta:company=companyName"); err != nil {
			t.Fatal(err)
		}
	}))
	// The capabilities one after another: the shared site's PHP workers
	// serve the other tests meanwhile.
	for _, cp := range protectedCapabilities {
		t.Run(cp, func(t *testing.T) {
			role := "hlbtest_" + cp + "_" + strings.ToLower(testkit.RandomID(6))
			site.AddRole(t, role, cp) // exactly this one capability
			email := wordpresstest.UniqueEmail(t)
			id := site.CreateUser(t, email, role)
			// One contact finds the user by email; another is linked to it
			// and carries an email of its own, which must not be written.
			byEmail := b.contact(t, func(c *highlevel.Contact) { c.Email = email; c.FirstName = "Mallory" })
			linked := b.contact(t, func(c *highlevel.Contact) { c.FirstName = "Mallory" })
			if _, err := b.wp.SetMeta(context.Background(), id, map[string]wordpress.MetaValue{"highlevel_contact_id": linked.ID}); err != nil {
				t.Fatal(err)
			}
			before := b.state(t, id)
			if !before.user.Can(cp) || !slices.Equal(before.user.Roles, []string{role}) {
				t.Fatalf("test user = %+v, want role %s with %s: the test proves nothing", before.user, role, cp)
			}
			for _, tc := range []struct {
				c    highlevel.Contact
				call []string
			}{
				{byEmail, []string{"add", "role", "customer"}}, {byEmail, []string{"add"}},
				{byEmail, []string{"update"}}, {byEmail, []string{"update_tags", "role", "customer"}},
				{linked, []string{"add", "role", "subscriber"}}, {linked, []string{"update", "role", "customer"}},
				{linked, []string{"update_tags"}},
			} {
				status, r := b.wpf(t, tc.call[0], tc.c.ID, tc.call[1:]...)
				refusedWith(t, strings.Join(tc.call, " ")+" of "+tc.c.Email, status, r, "able to "+cp)
			}
			sameState(t, before, b.state(t, id))
		})
	}
}

// A multisite super admin who is only a subscriber on this site looks
// harmless to core REST; the companion reports the status and the bridge
// refuses. A private network, so the shared site stays a single site.
func TestSuperAdminIsNeverChanged(t *testing.T) {
	t.Parallel()
	network, stop, err := wordpresstest.StartMultisite()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	b := setup(t, func(s *settings) { s.site = network })
	if !b.me.SuperAdmin {
		t.Errorf("the network's administrator is not reported as a super admin: %+v", b.me)
	}

	email := wordpresstest.UniqueEmail(t)
	id := network.CreateUser(t, email, "subscriber")
	network.GrantSuperAdmin(t, id)
	before := b.state(t, id)
	if !before.user.SuperAdmin || !slices.Equal(before.user.Roles, []string{"subscriber"}) {
		t.Fatalf("super admin = %+v, want a subscriber reported as super admin", before.user)
	}
	for _, cp := range protectedCapabilities {
		if before.user.Can(cp) {
			t.Fatalf("core REST shows the super admin with %s: the test proves nothing", cp)
		}
	}
	c := b.contact(t, func(c *highlevel.Contact) { c.Email = email; c.FirstName = "Mallory" })
	for _, call := range [][]string{{"add", "role", "customer"}, {"add"}, {"update", "role", "customer"}, {"update_tags", "role", "customer"}} {
		status, r := b.wpf(t, call[0], c.ID, call[1:]...)
		refusedWith(t, strings.Join(call, " "), status, r, "super admin")
	}
	sameState(t, before, b.state(t, id))

	// A plain subscriber of the same network is synced: the refusal is the
	// super admin's alone.
	plainEmail := wordpresstest.UniqueEmail(t)
	plain := network.CreateUser(t, plainEmail, "subscriber")
	pc := b.contact(t, func(c *highlevel.Contact) { c.Email = plainEmail })
	if status, r := b.wpf(t, "update", pc.ID, "role", "customer"); status != http.StatusOK {
		t.Fatalf("update of a plain subscriber: %d %+v", status, r)
	}
	if u := b.state(t, plain).user; !slices.Equal(u.Roles, []string{"customer"}) || u.SuperAdmin {
		t.Errorf("plain subscriber after update = %+v", u)
	}
}

// role= swaps only the allowed roles (and the default); a role outside them
// that the user holds is kept.
func TestRoleChangeKeepsOtherRoles(t *testing.T) {
	t.Parallel()
	b := setup(t) // allowed: customer, and the default subscriber
	roles := func(id int64) []string {
		t.Helper()
		r := slices.Clone(b.state(t, id).user.Roles)
		slices.Sort(r)
		return r
	}
	add := func(c highlevel.Contact, extra ...string) {
		t.Helper()
		if status, r := b.wpf(t, "add", c.ID, extra...); status != http.StatusOK || r.Result.Created {
			t.Fatalf("add %v: %d %+v", extra, status, r)
		}
	}

	t.Run("author", func(t *testing.T) {
		t.Parallel()
		email := wordpresstest.UniqueEmail(t)
		id := site.CreateUser(t, email, "author")
		c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
		add(c, "role", "customer")
		if got := roles(id); !slices.Equal(got, []string{"author", "customer"}) {
			t.Fatalf("after add&role=customer: roles %v, want author and customer", got)
		}
		add(c, "role", "subscriber") // the default swaps for customer
		if got := roles(id); !slices.Equal(got, []string{"author", "subscriber"}) {
			t.Fatalf("after add&role=subscriber: roles %v, want author and subscriber", got)
		}
		add(c) // no role= changes no role
		if got := roles(id); !slices.Equal(got, []string{"author", "subscriber"}) {
			t.Fatalf("after add: roles %v", got)
		}
	})

	// WordPress's editor role holds unfiltered_html, a protected capability,
	// so the bridge leaves a stock editor alone; an editor whose
	// unfiltered_html is taken away is synced and stays an editor.
	t.Run("editor", func(t *testing.T) {
		t.Parallel()
		email := wordpresstest.UniqueEmail(t)
		id := site.CreateUser(t, email, "editor")
		site.Eval(t, `(new WP_User((int) $args[0]))->add_cap('unfiltered_html', false);`, strconv.FormatInt(id, 10))
		c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
		add(c, "role", "customer")
		if got := roles(id); !slices.Equal(got, []string{"customer", "editor"}) {
			t.Fatalf("after add&role=customer: roles %v, want customer and editor", got)
		}
	})
	t.Run("stock editor", func(t *testing.T) {
		t.Parallel()
		email := wordpresstest.UniqueEmail(t)
		id := site.CreateUser(t, email, "editor")
		c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
		status, r := b.wpf(t, "add", c.ID, "role", "customer")
		refusedWith(t, "add&role=customer of an editor", status, r, "able to unfiltered_html")
		if got := roles(id); !slices.Equal(got, []string{"editor"}) {
			t.Fatalf("roles %v, want editor only", got)
		}
	})
	t.Run("subscriber", func(t *testing.T) {
		t.Parallel()
		email := wordpresstest.UniqueEmail(t)
		id := site.CreateUser(t, email, "subscriber")
		c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
		add(c, "role", "customer") // swapped, not added
		if got := roles(id); !slices.Equal(got, []string{"customer"}) {
			t.Fatalf("roles %v, want customer", got)
		}
	})
}

// update_tags changes tags and nothing else: its role= is ignored, whatever
// role it names.
func TestUpdateTagsNeverChangesRoles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	email := wordpresstest.UniqueEmail(t)
	id := site.CreateUser(t, email, "author")
	c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
	for _, role := range []string{"customer", "subscriber", "administrator", "no_such_role"} {
		if status, r := b.wpf(t, "update_tags", c.ID, "role", role); status != http.StatusOK {
			t.Fatalf("update_tags&role=%s: %d %+v", role, status, r)
		}
		st := b.state(t, id)
		if !slices.Equal(st.user.Roles, []string{"author"}) {
			t.Fatalf("after update_tags&role=%s: roles %v", role, st.user.Roles)
		}
		if tags, _ := st.meta["highlevel_tags"].([]string); strings.Join(tags, "|") != "vip|course two" {
			t.Fatalf("tags = %#v", st.meta["highlevel_tags"])
		}
	}
}

// heldUsers holds each sync of a held contact at its first WordPress call
// until that contact is released, so that the webhooks sent meanwhile wait
// together and are merged.
type heldUsers struct {
	bridge.Users
	mu   sync.Mutex
	held map[string]*hold
}

type hold struct {
	entered, release chan struct{}
	once             sync.Once
}

// hold starts holding contactID's syncs.
func (h *heldUsers) hold(contactID string) *hold {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd := &hold{entered: make(chan struct{}), release: make(chan struct{})}
	h.held[contactID] = hd
	return hd
}

// wait holds a sync of contactID while it is held.
func (h *heldUsers) wait(ctx context.Context, contactID string) error {
	h.mu.Lock()
	hd := h.held[contactID]
	h.mu.Unlock()
	if hd == nil {
		return nil
	}
	hd.once.Do(func() { close(hd.entered) })
	select {
	case <-hd.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *heldUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	if err := h.wait(ctx, value); err != nil {
		return nil, nil, err
	}
	return h.Users.FindUser(ctx, key, value, email)
}

func (h *heldUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	if err := h.wait(ctx, value); err != nil {
		return nil, nil, false, err
	}
	return h.Users.FindOrCreateUser(ctx, key, value, nu)
}

// An update_tags with role= that waits beside an add is merged into that
// add without its role, in either order.
func TestUpdateTagsRoleNotCarriedIntoMergedAdd(t *testing.T) {
	t.Parallel()
	h := &heldUsers{held: map[string]*hold{}}
	b := setup(t, withQueue(fastQueue), func(s *settings) {
		s.wrapUsers = func(u bridge.Users) bridge.Users { h.Users = u; return h }
	})
	for name, calls := range map[string][][]string{
		"add then update_tags": {{"add"}, {"update_tags", "role", "customer"}},
		"update_tags then add": {{"update_tags", "role", "customer"}, {"add"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			email := wordpresstest.UniqueEmail(t)
			id := site.CreateUser(t, email, "author")
			c := b.contact(t, func(c *highlevel.Contact) { c.Email = email })
			hd := h.hold(c.ID)
			status, first := b.wpf(t, "update", c.ID)
			if status != http.StatusAccepted {
				t.Fatalf("update: %d %+v", status, first)
			}
			<-hd.entered // the update's sync holds the contact; what follows waits
			ids := []int64{first.EventID}
			for _, call := range calls {
				status, r := b.wpf(t, call[0], c.ID, call[1:]...)
				if status != http.StatusAccepted {
					t.Fatalf("%v: %d %+v", call, status, r)
				}
				ids = append(ids, r.EventID)
			}
			close(hd.release)
			for _, ev := range ids {
				if got := b.waitEvent(t, ev, 30*time.Second); got.Status != bridge.StatusDone {
					t.Fatalf("event %d = %+v", ev, got)
				}
			}
			st := b.state(t, id)
			if !slices.Equal(st.user.Roles, []string{"author"}) {
				t.Errorf("roles %v, want author only: update_tags's role was applied", st.user.Roles)
			}
			if st.meta["highlevel_contact_id"] != c.ID {
				t.Errorf("the merged sync did not run: meta %v", st.meta)
			}
		})
	}
}

// The bridge refuses to start with a role to give that does not exist or
// that grants a protected capability (checked against the real site's
// roles: a stock editor holds unfiltered_html).
func TestCheckRolesAgainstTheSite(t *testing.T) {
	t.Parallel()
	roles, err := newSiteClient(t).Roles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		allowed []string
		want    string // "" for no error
	}{
		{[]string{"customer"}, ""},
		{[]string{"customer", "editor"}, `role "editor" grants`},
		{[]string{"shop_manager_nowhere"}, `role "shop_manager_nowhere" does not exist`},
	}
	for _, tc := range cases {
		s, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber", AllowedRoles: tc.allowed,
			TagsMetaKey: "t", ContactIDMetaKey: "c"}, newSiteClient(t), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.CheckRoles(roles)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want no error", tc.allowed, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error with %q", tc.allowed, err, tc.want)
		}
	}
}

// newSiteClient is a WordPress client of the shared test site as its administrator.
func newSiteClient(t *testing.T) *wordpress.Client {
	t.Helper()
	wp, err := wordpress.New(wordpress.Config{URL: site.URL, Username: site.Username, AppPassword: site.AppPassword, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return wp
}
