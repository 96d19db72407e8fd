package wordpress

import (
	"context"
	"net/http"
)

// Role is one of the site's roles, as the companion plugin reports it.
type Role struct {
	// Name is the role's display name, e.g. "Subscriber".
	Name string `json:"name"`
	// Capabilities are the capabilities the role grants, sorted.
	Capabilities []string `json:"capabilities"`
}

// Roles returns the site's roles by slug, with the capabilities each grants
// (GET /hlbridge/v1/roles, companion 1.2.0). Core REST has no such call.
func (c *Client) Roles(ctx context.Context) (map[string]Role, error) {
	var out struct {
		Roles map[string]Role `json:"roles"`
	}
	if _, err := c.do(ctx, call{op: "read roles", method: http.MethodGet, route: "/hlbridge/v1/roles", out: &out}); err != nil {
		return nil, err
	}
	if out.Roles == nil {
		out.Roles = map[string]Role{}
	}
	return out.Roles, nil
}

// Outdated reports whether the companion is older than MinCompanionVersion.
func (st *CompanionStatus) Outdated() bool { return versionLess(st.Version, MinCompanionVersion) }
