package wordpress

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// RoleExists reports whether the site has role. WordPress's REST API has
// no read-only way to list roles (the users endpoint takes any name as a
// filter without complaint), so RoleExists asks to create a user with that
// role and the login of the authenticated user, which exists: WordPress
// checks the role first (an unknown one is refused as
// rest_user_invalid_role) and then refuses the taken login
// (existing_user_login) before it writes anything. It needs create_users.
// On multisite, where WordPress creates users another way, it refuses to
// probe: check status.Multisite first (see Companion).
func (c *Client) RoleExists(ctx context.Context, role string) (bool, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return false, err
	}
	if me.Username == "" {
		return false, errors.New("wordpress: check role: the site did not say the current user's login")
	}
	_, err = c.CreateUser(ctx, NewUser{Username: me.Username, Email: "hlbridge-role-check@example.invalid",
		Password: rand.Text(), Roles: []string{role}})
	switch {
	case errors.Is(err, ErrInvalidRole):
		return false, nil
	case errors.Is(err, ErrDuplicateLogin):
		return true, nil
	case err == nil:
		// Cannot happen: the login is taken. Say so rather than guess.
		return false, fmt.Errorf("wordpress: check role %q: the site created a user with the taken login %q; delete it", role, me.Username)
	}
	return false, fmt.Errorf("wordpress: check role %q: %w", role, err)
}

// Outdated reports whether the companion is older than MinCompanionVersion.
func (st *CompanionStatus) Outdated() bool { return versionLess(st.Version, MinCompanionVersion) }
