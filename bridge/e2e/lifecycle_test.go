package e2e_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
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
