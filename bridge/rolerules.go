package bridge

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
)

// RoleRule gives Role to a contact that carries Tag: membership by tag.
type RoleRule struct {
	// Tag is a HighLevel tag name, compared case-insensitively (HighLevel's
	// API lower-cases tags; workflow webhooks may not).
	Tag string
	// Role is the WordPress role the tag gives. It must be one of the
	// allowed roles (or the default role).
	Role string
}

// ParseRoleRules reads an ordered list of rules such as
// "gold=gold_member,silver=silver_member". The first rule whose tag a
// contact carries decides; a tag may appear once.
func ParseRoleRules(s string) ([]RoleRule, error) {
	var out []RoleRule
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		tag, role, ok := strings.Cut(item, "=")
		tag, role = strings.TrimSpace(tag), strings.TrimSpace(role)
		if !ok || tag == "" || role == "" {
			return nil, fmt.Errorf("%q: want TAG=ROLE, e.g. gold=gold_member", item)
		}
		if slices.ContainsFunc(out, func(r RoleRule) bool { return strings.EqualFold(r.Tag, tag) }) {
			return nil, fmt.Errorf("%q: tag %q has a rule already (the first one would always win)", item, tag)
		}
		out = append(out, RoleRule{Tag: tag, Role: role})
	}
	return out, nil
}

// checkRoleRules refuses a rule whose role is not allowed: the rules hand
// out roles as role= does, within the same fence.
func (s *Syncer) checkRoleRules() error {
	for _, r := range s.cfg.RoleRules {
		if !s.RoleAllowed(r.Role) {
			return fmt.Errorf("bridge: role rule %s=%s: role %q is not allowed (allowed: %s)",
				r.Tag, r.Role, r.Role, strings.Join(s.cfg.AllowedRoles, ", "))
		}
	}
	return nil
}

// ruleRole is the role the role rules give c: the role of the first rule
// whose tag c carries, else the default role. ok is false when no rules
// are configured, or when c's tags are unknown (a payload that left them
// out): then roles are left as they are.
func (s *Syncer) ruleRole(c *highlevel.Contact) (role string, ok bool) {
	if len(s.cfg.RoleRules) == 0 || !c.Carries("tags") {
		return "", false
	}
	for _, r := range s.cfg.RoleRules {
		if hasTag(c, r.Tag) {
			return r.Role, true
		}
	}
	return s.cfg.DefaultRole, true
}

// hasTag reports whether c carries tag, case-insensitively.
func hasTag(c *highlevel.Contact, tag string) bool {
	tag = strings.TrimSpace(tag)
	return tag != "" && slices.ContainsFunc(c.Tags, func(t string) bool { return strings.EqualFold(strings.TrimSpace(t), tag) })
}

// wantedRole is the role a sync of req gives the user: an explicit role=
// on an add or update wins for that sync; otherwise the role rules decide
// (on every action, update_tags included); "" leaves roles alone.
func (s *Syncer) wantedRole(req Request, c *highlevel.Contact) string {
	if req.Action.TakesRole() && req.Role != "" {
		return req.Role
	}
	role, _ := s.ruleRole(c)
	return role
}
