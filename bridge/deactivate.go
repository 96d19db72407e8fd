package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Deactivation is what deactivating a contact does to its user: on a
// signed ContactDelete app event, and on any sync of a contact that
// carries the deactivation tag.
type Deactivation string

// The deactivation policies (BRIDGE_ON_CONTACT_DELETE).
const (
	// DeactivateIgnore does nothing: a ContactDelete is answered "ignored".
	// The default.
	DeactivateIgnore Deactivation = "ignore"
	// DeactivateUnlink removes the contact-id meta, so the user is no
	// longer the contact's; everything else stays.
	DeactivateUnlink Deactivation = "unlink"
	// DeactivateStripRoles removes the allowed roles (the default among
	// them) and keeps every other role, which may leave the user with no
	// role on the site. The user can still log in, but holds no capability
	// the bridge gave.
	DeactivateStripRoles Deactivation = "strip_roles"
	// DeactivateDelete deletes the user, giving their content to
	// Config.ReassignUser.
	DeactivateDelete Deactivation = "delete"
)

// ParseDeactivation returns the policy named s ("" is DeactivateIgnore).
func ParseDeactivation(s string) (Deactivation, bool) {
	switch d := Deactivation(s); d {
	case "":
		return DeactivateIgnore, true
	case DeactivateIgnore, DeactivateUnlink, DeactivateStripRoles, DeactivateDelete:
		return d, true
	}
	return "", false
}

// Deactivated values of Result.Deactivated: what a deactivation did.
const (
	deactivatedNone     = "no_user"
	deactivatedUnlinked = "unlinked"
	deactivatedStripped = "roles_stripped"
	deactivatedDeleted  = "deleted"
)

// checkDeactivation checks the deactivation settings of cfg.
func checkDeactivation(cfg Config) error {
	if _, ok := ParseDeactivation(string(cfg.OnContactDelete)); !ok {
		return fmt.Errorf("bridge: unknown deactivation policy %q (want ignore, unlink, strip_roles or delete)", cfg.OnContactDelete)
	}
	if cfg.OnContactDelete == DeactivateDelete && cfg.ReassignUser <= 0 {
		return errors.New("bridge: deleting users needs a user to give their content to (ReassignUser)")
	}
	if cfg.DeactivateTag != "" && (cfg.OnContactDelete == "" || cfg.OnContactDelete == DeactivateIgnore) {
		return errors.New("bridge: a deactivation tag needs a deactivation policy other than ignore")
	}
	return nil
}

// OnContactDelete is the policy for a signed ContactDelete app event;
// DeactivateIgnore means such events are acknowledged and not queued.
func (s *Syncer) OnContactDelete() Deactivation {
	if s.cfg.OnContactDelete == "" {
		return DeactivateIgnore
	}
	return s.cfg.OnContactDelete
}

// deactivateDeleted carries out a deactivate request: the contact was
// deleted in HighLevel, so it cannot be read, and its user is found only
// by the contact-id link. An email match is not enough to take anything
// away from a user: the link says the user is this contact's.
func (s *Syncer) deactivateDeleted(ctx context.Context, req Request) (Result, error) {
	ids, err := s.users.UsersByMeta(ctx, s.cfg.ContactIDMetaKey, req.ContactID)
	if err != nil {
		return Result{}, fmt.Errorf("find user of contact %s: %w", req.ContactID, err)
	}
	res := Result{Deactivated: deactivatedNone}
	for _, id := range ids {
		u, err := s.users.UserByID(ctx, id)
		if errors.Is(err, wordpress.ErrNotFound) {
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("read user %d: %w", id, err)
		}
		if res, err = s.deactivateUser(ctx, req.ContactID, u); err != nil {
			return res, err
		}
	}
	return res, nil
}

// deactivateUser applies the deactivation policy to u, the user of the
// contact contactID. Users who can run the site are refused, as by every
// sync.
func (s *Syncer) deactivateUser(ctx context.Context, contactID string, u *wordpress.User) (Result, error) {
	if why := privilegedUser(u); why != "" {
		return Result{}, refuse("user %d is %s; hlbridge never deactivates administrators or users who can manage the site", u.ID, why)
	}
	res := Result{UserID: u.ID}
	log := func(what string) {
		s.logger.InfoContext(ctx, "deactivated user", slog.String("contact_id", contactID),
			slog.Int64("user_id", u.ID), slog.String("deactivation", what))
	}
	switch s.OnContactDelete() {
	case DeactivateUnlink:
		m, err := s.users.Meta(ctx, u.ID, s.cfg.ContactIDMetaKey)
		if err != nil {
			return res, fmt.Errorf("read meta of user %d: %w", u.ID, err)
		}
		res.Deactivated = deactivatedUnlinked
		if linked, _ := m[s.cfg.ContactIDMetaKey].(string); linked == "" {
			return res, nil
		} else if linked != contactID {
			return Result{}, refuse("user %d is linked to contact %s, not %s", u.ID, linked, contactID)
		}
		if _, err := s.users.SetMeta(ctx, u.ID, map[string]wordpress.MetaValue{s.cfg.ContactIDMetaKey: nil}); err != nil {
			return res, fmt.Errorf("unlink user %d: %w", u.ID, err)
		}
		res.Changed = []string{s.cfg.ContactIDMetaKey}
	case DeactivateStripRoles:
		var strip []string
		for _, r := range u.Roles {
			if slices.Contains(s.cfg.AllowedRoles, r) {
				strip = append(strip, r)
			}
		}
		res.Deactivated = deactivatedStripped
		if len(strip) == 0 {
			return res, nil
		}
		if _, err := s.users.RemoveRoles(ctx, u.ID, strip); err != nil {
			return res, fmt.Errorf("remove roles of user %d: %w", u.ID, err)
		}
		res.Changed = []string{"roles"}
	case DeactivateDelete:
		if u.ID == s.cfg.ReassignUser {
			return Result{}, refuse("user %d receives the content of deleted users, so hlbridge does not delete it", u.ID)
		}
		if err := s.users.DeleteUser(ctx, u.ID, s.cfg.ReassignUser); err != nil {
			if errors.Is(err, wordpress.ErrNotFound) {
				res.Deactivated = deactivatedNone
				return res, nil
			}
			return res, fmt.Errorf("delete user %d: %w", u.ID, err)
		}
		res.Deactivated = deactivatedDeleted
	default:
		return Result{Deactivated: string(DeactivateIgnore)}, nil
	}
	log(res.Deactivated)
	return res, nil
}

// deactivatedByTag reports whether c carries the deactivation tag, so that
// any sync of it deactivates its user instead of updating it.
func (s *Syncer) deactivatedByTag(c *highlevel.Contact) bool {
	return s.cfg.DeactivateTag != "" && c.Carries("tags") && hasTag(c, s.cfg.DeactivateTag)
}
