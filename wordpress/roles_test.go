package wordpress_test

import (
	"slices"
	"testing"
)

// Roles reports every role of the site with the capabilities it grants.
func TestRoles(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	roles, err := c.Roles(ctx(t))
	if err != nil {
		t.Fatalf("Roles: %v", err)
	}
	for slug, cap := range map[string]string{"administrator": "manage_options", "editor": "edit_others_posts", "subscriber": "read", "customer": "read"} {
		r, ok := roles[slug]
		if !ok || r.Name == "" || !slices.Contains(r.Capabilities, cap) {
			t.Errorf("role %s = %+v (present %v), want it with a name and %s", slug, r, ok, cap)
		}
	}
	if slices.Contains(roles["subscriber"].Capabilities, "edit_posts") {
		t.Errorf("subscriber grants edit_posts: %v", roles["subscriber"].Capabilities)
	}
}
