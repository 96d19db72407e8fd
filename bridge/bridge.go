package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Users is what the bridge needs of WordPress; *wordpress.Client has it.
type Users interface {
	UserByID(ctx context.Context, id int64) (*wordpress.User, error)
	FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error)
	UsersByMeta(ctx context.Context, key, value string) ([]int64, error)
	CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error)
	FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error)
	UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error)
	Meta(ctx context.Context, id int64, keys ...string) (map[string]wordpress.MetaValue, error)
	SetMeta(ctx context.Context, id int64, values map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error)
	SendPendingNotification(ctx context.Context, id int64, who wordpress.Notify, flag string) (bool, error)
	RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error)
	DeleteUser(ctx context.Context, id, reassign int64) error
	PasswordResetLink(ctx context.Context, id int64) (string, error)
}

// Contacts is what the bridge needs of HighLevel; *highlevel.Client has it.
type Contacts interface {
	Contact(ctx context.Context, id string) (*highlevel.Contact, error)
	CustomFieldID(ctx context.Context, idOrKey string) (string, error)
	UpdateCustomFields(ctx context.Context, contactID string, fields []highlevel.FieldWrite) error
}

// Config holds the product's rules for one site.
type Config struct {
	// DefaultRole is the role of new users when the webhook names none.
	DefaultRole string
	// AllowedRoles are the roles a webhook's role= may set. The default
	// role is always allowed; administrator never is.
	AllowedRoles []string
	// UsernameField and PasswordField name HighLevel custom fields (id or
	// key) that hold a new user's login and password. Empty: the login is
	// the email and the password is generated.
	UsernameField, PasswordField string
	// ReturnPasswordField names the HighLevel custom field (id or key) that
	// receives the password generated for a new user. Empty: off.
	ReturnPasswordField string
	// RoleRules, in order, give a user the role of the first rule whose tag
	// its contact carries, else DefaultRole, on every sync (update_tags
	// included). Empty: roles change only by role=. Every rule's role must
	// be allowed. Roles outside AllowedRoles are never touched.
	RoleRules []RoleRule
	// OnContactDelete says what a signed ContactDelete app event, and the
	// deactivation tag, do to the contact's user; "" is DeactivateIgnore.
	OnContactDelete Deactivation
	// ReassignUser is the user id that receives a deleted user's content;
	// required with DeactivateDelete.
	ReassignUser int64
	// DeactivateTag names a tag that, when a contact carries it, makes any
	// sync apply OnContactDelete instead of the normal update (and never
	// create a user). Compared case-insensitively. Empty: off.
	DeactivateTag string
	// ReturnLoginLinkField names the HighLevel custom field (id or key) that
	// receives, for a new user, WordPress's own set-password link. Empty:
	// off. Works with or without ReturnPasswordField.
	ReturnLoginLinkField string
	// FieldMap says which HighLevel fields fill which WordPress fields.
	FieldMap []Mapping
	// TagsMetaKey is the user meta holding the contact's tag names as a
	// list (WP Fusion's highlevel_tags). ContactIDMetaKey holds the
	// contact id that links a user to its contact (highlevel_contact_id).
	TagsMetaKey, ContactIDMetaKey string
}

// Bookkeeping meta that makes the steps after a user's creation survive a
// crash or a failure: set with the contact id, cleared when done. The
// password flag holds a state, never a password (see finishPasswordReturn).
const (
	pendingNotificationKey = "hlbridge_pending_notification"
	pendingPasswordKey     = "hlbridge_pending_password"
)

// Syncer applies webhook requests to WordPress. It is safe for concurrent
// use; requests for one contact should still be serialised by the caller
// (the queue does it), although two racing adds never create two users.
type Syncer struct {
	cfg      Config
	users    Users
	contacts Contacts // nil in payload mode
	logger   *slog.Logger
	locks    keyLock // one Apply at a time per contact
	// passwords holds, in memory only, passwords set but not yet returned.
	passwords passwordMemo
}

// NewSyncer checks cfg and returns a Syncer. contacts may be nil: then the
// bridge runs in payload mode and takes each contact from its webhook body.
func NewSyncer(cfg Config, users Users, contacts Contacts, logger *slog.Logger) (*Syncer, error) {
	if users == nil {
		return nil, errors.New("bridge: WordPress users client is required")
	}
	if cfg.DefaultRole == "" {
		return nil, errors.New("bridge: default role is required")
	}
	if cfg.TagsMetaKey == "" || cfg.ContactIDMetaKey == "" {
		return nil, errors.New("bridge: tags and contact id meta keys are required")
	}
	if cfg.TagsMetaKey == cfg.ContactIDMetaKey {
		return nil, errors.New("bridge: the tags and contact id meta keys must differ")
	}
	if !slices.Contains(cfg.AllowedRoles, cfg.DefaultRole) {
		cfg.AllowedRoles = append(slices.Clone(cfg.AllowedRoles), cfg.DefaultRole)
	}
	for _, r := range cfg.AllowedRoles {
		if privilegedRole(r) {
			return nil, fmt.Errorf("bridge: role %q may never be granted by a webhook", r)
		}
	}
	if err := (&Syncer{cfg: cfg}).checkRoleRules(); err != nil {
		return nil, err
	}
	if err := checkDeactivation(cfg); err != nil {
		return nil, err
	}
	if contacts == nil && cfg.ReturnPasswordField != "" {
		return nil, errors.New("bridge: returning a password to HighLevel needs a HighLevel token")
	}
	if contacts == nil && cfg.ReturnLoginLinkField != "" {
		return nil, errors.New("bridge: returning a login link to HighLevel needs a HighLevel token")
	}
	for _, m := range cfg.FieldMap {
		if k, ok := m.MetaKey(); ok && (k == cfg.TagsMetaKey || k == cfg.ContactIDMetaKey) {
			return nil, fmt.Errorf("bridge: field map target %s is the bridge's own meta key", m.Target)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Every write goes through the sync's fence (see WithWriteFence).
	users = fencedUsers{users}
	if contacts != nil {
		contacts = fencedContacts{contacts}
	}
	return &Syncer{cfg: cfg, users: users, contacts: contacts, logger: logger}, nil
}

// PayloadMode reports whether contacts come from webhook bodies rather than
// from HighLevel's API.
func (s *Syncer) PayloadMode() bool { return s.contacts == nil }

// RoleAllowed reports whether a webhook may give role to a user.
func (s *Syncer) RoleAllowed(role string) bool {
	return !privilegedRole(role) && slices.Contains(s.cfg.AllowedRoles, role)
}

// privilegedRole is a role no webhook may grant, whatever the configuration.
func privilegedRole(role string) bool {
	return role == "administrator" || role == "super_admin"
}

// protectedCapabilities are the capabilities that put a user out of the
// bridge's reach: whoever holds one can take over the site, so a contact
// that carries their email must not rename them, change their email (and
// with it who can reset their password) or their roles. This is the one
// list privilegedUser checks; the administrator role and multisite super
// admins are refused besides.
var protectedCapabilities = []string{
	"manage_options",     // changes every setting: the default role, open registration, the site's address
	"edit_users",         // edits any user: their email, their password
	"promote_users",      // gives any user any role, administrator included
	"manage_network",     // runs a multisite network: a super admin's capability
	"delete_users",       // deletes users and hands their content to someone else
	"create_users",       // makes accounts with any role it may grant
	"activate_plugins",   // switches plugins on and off, security plugins included
	"install_plugins",    // uploads PHP that then runs on the server
	"edit_plugins",       // edits PHP that runs on the server
	"edit_theme_options", // changes menus, widgets and the customizer, which can hold scripts
	"unfiltered_html",    // publishes script that runs in administrators' browsers
}

// CheckRoles checks the roles the bridge may give against the site's roles
// (wordpress.Client.Roles): each must exist, and none may grant a protected
// capability, since a webhook that could hand one out would be a path to
// running the site. It is for start-up, so that a mistake stops the bridge
// before the first webhook rather than failing each sync.
func (s *Syncer) CheckRoles(siteRoles map[string]wordpress.Role) error {
	var errs []error
	for _, r := range s.cfg.AllowedRoles {
		role, ok := siteRoles[r]
		if !ok {
			names := slices.Sorted(maps.Keys(siteRoles))
			errs = append(errs, fmt.Errorf("role %q does not exist on the site (it has: %s)", r, strings.Join(names, ", ")))
			continue
		}
		for _, cp := range protectedCapabilities {
			if slices.Contains(role.Capabilities, cp) {
				errs = append(errs, fmt.Errorf("role %q grants %s, so a webhook giving it would hand over the site; allow only roles without %s",
					r, cp, strings.Join(protectedCapabilities, ", ")))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// privilegedUser says why u may run the site, or "" when it may not. The
// bridge never changes such a user, even when a contact carries their email.
// A multisite super admin can do everything although core REST shows only
// their role on this site (perhaps subscriber): the companion plugin reports
// that status as hlbridge_super_admin.
func privilegedUser(u *wordpress.User) string {
	switch {
	case u.SuperAdmin:
		return "a multisite super admin"
	case u.HasRole("administrator"):
		return "an administrator"
	}
	for _, cp := range protectedCapabilities {
		if u.Can(cp) {
			return "able to " + cp
		}
	}
	return ""
}

// rolesAfter returns the roles a user holding have gets when a webhook asks
// for role: the allowed roles (the default among them) are swapped for
// role, and every other role is kept, so that a sync never takes away a
// role it may not give (an author's, a membership plugin's).
func (s *Syncer) rolesAfter(have []string, role string) []string {
	out := make([]string, 0, len(have)+1)
	for _, r := range have {
		if !slices.Contains(s.cfg.AllowedRoles, r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return append(out, role)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// CheckRequestedRole refuses (a *RefusedError) a role= that a webhook may
// not give; "" (no role asked for) passes. The intake checks it before
// accepting a webhook, and Apply again before applying one.
func (s *Syncer) CheckRequestedRole(role string) error {
	if role != "" && !s.RoleAllowed(role) {
		return refuse("role %q is not allowed (allowed: %s)", role, strings.Join(s.cfg.AllowedRoles, ", "))
	}
	return nil
}
