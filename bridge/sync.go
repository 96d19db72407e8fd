package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Action is what a webhook asks for, by WP Fusion's names.
type Action string

// The actions, as WP Fusion's wpf_action names them.
const (
	// ActionAdd creates the contact's user, or updates it when it exists.
	ActionAdd Action = "add"
	// ActionUpdate updates the contact's user: fields, meta and tags.
	ActionUpdate Action = "update"
	// ActionUpdateTags updates only the user's tags.
	ActionUpdateTags Action = "update_tags"
	// ActionTest answers success and touches nothing.
	ActionTest Action = "test"
	// ActionDeactivate applies the deactivation policy (Config.OnContactDelete)
	// to the user linked to a contact that was deleted in HighLevel. Only a
	// signed ContactDelete app event asks for it; workflows use the
	// deactivation tag instead, so ParseAction does not take it.
	ActionDeactivate Action = "deactivate"
)

// TakesRole reports whether the action applies a webhook's role=: add and
// update do; update_tags ignores its role= (only the role rules, when
// configured, change roles on update_tags).
func (a Action) TakesRole() bool { return a == ActionAdd || a == ActionUpdate }

// ParseAction returns the action named s, or false.
func ParseAction(s string) (Action, bool) {
	switch a := Action(s); a {
	case ActionAdd, ActionUpdate, ActionUpdateTags, ActionTest:
		return a, true
	}
	return "", false
}

// Request is one webhook's intent.
type Request struct {
	Action    Action `json:"action"`
	ContactID string `json:"contact_id"`
	// SendNotification asks for WordPress's welcome notification when the
	// request creates the user.
	SendNotification bool `json:"send_notification,omitempty"`
	// Role is the role asked for with role=, "" for none. Only add and
	// update apply it (see Action.TakesRole); it replaces the user's
	// allowed roles and keeps the others (see Syncer.rolesAfter).
	Role string `json:"role,omitempty"`
	// Contact is the contact as the webhook body carried it, without its
	// secrets (see Syncer.TakePayload); used in payload mode only. The queue
	// keeps the newest known state of each contact and applies that.
	Contact *highlevel.Contact `json:"contact,omitempty"`
	// Password is the password the payload's password field carried, for
	// a user this request creates; payload mode only. It is stored only
	// while the sync waits, never in an event.
	Password string `json:"password,omitempty"`
}

// Result says what a request did.
type Result struct {
	UserID  int64    `json:"user_id,omitempty"`
	Created bool     `json:"created"`
	Changed []string `json:"changed,omitempty"` // the fields and meta keys written
	// Notified: WordPress's new-user notification was sent.
	Notified bool `json:"notified,omitempty"`
	// PasswordReturned: the generated password was written to HighLevel.
	PasswordReturned bool `json:"password_returned,omitempty"`
	// LoginLinkReturned: a set-password link was written to HighLevel.
	LoginLinkReturned bool `json:"login_link_returned,omitempty"`
	// Deactivated says what a deactivation did: unlinked, roles_stripped,
	// deleted, or no_user (there was no linked user); empty when the sync
	// was not a deactivation.
	Deactivated string `json:"deactivated,omitempty"`
}

// Apply carries out req against WordPress: it loads the contact, finds
// its user (by the linked contact id, then by exact email) and creates or
// updates it. A refusal matches ErrRefused; other errors say with Retryable
// whether trying again may help.
func (s *Syncer) Apply(ctx context.Context, req Request) (Result, error) {
	if req.Action == ActionTest {
		return Result{}, nil
	}
	if _, ok := ParseAction(string(req.Action)); !ok && req.Action != ActionDeactivate {
		return Result{}, refuse("unknown action %q", req.Action)
	}
	if req.ContactID == "" {
		return Result{}, refuse("no contact id")
	}
	if !req.Action.TakesRole() {
		req.Role = "" // update_tags never applies role=, also when stored with one
	}
	if err := s.CheckRequestedRole(req.Role); err != nil {
		return Result{}, err
	}
	defer s.locks.lock(req.ContactID)()
	if req.Action == ActionDeactivate {
		return s.deactivateDeleted(ctx, req)
	}
	c, err := s.contact(ctx, req)
	if err != nil {
		return Result{}, err
	}
	if req.Action == ActionAdd && !s.deactivatedByTag(c) {
		// An add finds the user or creates it in one request. A contact
		// that could not make a new user (no email, say) may still have
		// one: it is looked up below, and refused only if it has none.
		if nu, err := s.newUserFor(ctx, req, c); err == nil {
			return s.create(ctx, req, c, nu, true)
		}
	}
	u, err := s.findUser(ctx, c)
	if err != nil {
		return Result{}, err
	}
	if s.deactivatedByTag(c) {
		if u == nil {
			return Result{Deactivated: deactivatedNone}, nil // never create a user to deactivate it
		}
		return s.deactivateUser(ctx, c.ID, u)
	}
	if u == nil {
		if req.Action != ActionAdd {
			return Result{}, refuse("no WordPress user is linked to contact %s or has its email", c.ID)
		}
		nu, err := s.newUserFor(ctx, req, c)
		if err != nil {
			return Result{}, err
		}
		return s.create(ctx, req, c, nu, false)
	}
	return s.update(ctx, req, c, u)
}

// Plan is Apply without its writes: it takes the same decisions, through
// the same code, against WordPress and HighLevel as they are now, and
// returns the Result Apply would return (UserID 0 for a user it would
// create), or the refusal Apply would give. Only reads reach WordPress and
// HighLevel: every write is answered in place, as if it had succeeded (an
// update answers the user as it would be), so the plan cannot drift from
// Apply. It does not wait for a running Apply of the contact.
func (s *Syncer) Plan(ctx context.Context, req Request) (Result, error) {
	return s.dry(nil).Apply(ctx, req)
}

// PlanContact is Plan for a contact the caller already holds, e.g. a
// search result, so that planning many contacts costs HighLevel no read
// each. In token mode c stands in for the contact's GET; in payload mode
// it is the webhook body's contact.
func (s *Syncer) PlanContact(ctx context.Context, req Request, c *highlevel.Contact) (Result, error) {
	if c == nil {
		return Result{}, errors.New("bridge: PlanContact needs a contact")
	}
	req.ContactID = c.ID
	if s.contacts == nil {
		req.Contact = c
	}
	return s.dry(c).Apply(ctx, req)
}

// dry returns a Syncer with the same rules whose writes do nothing; known,
// when not nil, is served instead of reading that contact from HighLevel.
func (s *Syncer) dry(known *highlevel.Contact) *Syncer {
	d := &Syncer{cfg: s.cfg, users: dryUsers{real: s.users}, logger: slog.New(slog.DiscardHandler)}
	if s.contacts != nil {
		d.contacts = dryContacts{real: s.contacts, known: known}
	}
	return d
}

// dryUsers reads WordPress and answers every write as if it had been done.
// It names each method rather than embedding Users, so that a method added
// to Users does not pass through to WordPress unseen: it must be sorted
// here into a read or a write.
type dryUsers struct{ real Users }

func (u dryUsers) UserByID(ctx context.Context, id int64) (*wordpress.User, error) {
	return u.real.UserByID(ctx, id)
}

func (u dryUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	return u.real.FindUser(ctx, key, value, email)
}

func (u dryUsers) UsersByMeta(ctx context.Context, key, value string) ([]int64, error) {
	return u.real.UsersByMeta(ctx, key, value)
}

func (u dryUsers) Meta(ctx context.Context, id int64, keys ...string) (map[string]wordpress.MetaValue, error) {
	return u.real.Meta(ctx, id, keys...)
}

// FindOrCreateUser reads as FindUser does and answers a create as
// CreateUser does.
func (u dryUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	ids, found, err := u.real.FindUser(ctx, key, value, nu.Email)
	if err != nil || found != nil {
		return ids, found, false, err
	}
	created, err := u.CreateUser(ctx, nu)
	return ids, created, true, err
}

func (u dryUsers) CreateUser(_ context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	return &wordpress.User{Username: nu.Username, Email: nu.Email, Roles: nu.Roles, FirstName: nu.FirstName,
		LastName: nu.LastName, Nickname: nu.Nickname, Name: nu.Name, Description: nu.Description, URL: nu.URL}, nil
}

func (u dryUsers) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	cur, err := u.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	after := *cur
	for _, f := range []struct {
		dst *string
		src *string
	}{{&after.Email, up.Email}, {&after.FirstName, up.FirstName}, {&after.LastName, up.LastName},
		{&after.Nickname, up.Nickname}, {&after.Name, up.Name}, {&after.Description, up.Description}, {&after.URL, up.URL}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if up.Roles != nil {
		after.Roles = up.Roles
	}
	return &after, nil
}

func (u dryUsers) SetMeta(_ context.Context, _ int64, values map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error) {
	return values, nil
}

func (u dryUsers) RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error) {
	cur, err := u.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	var left []string
	for _, r := range cur.Roles {
		if !slices.Contains(roles, r) {
			left = append(left, r)
		}
	}
	return left, nil
}

func (u dryUsers) DeleteUser(context.Context, int64, int64) error { return nil }

// PasswordResetLink answers a placeholder: a plan makes no link.
func (u dryUsers) PasswordResetLink(context.Context, int64) (string, error) {
	return "(a set-password link)", nil
}

// SendPendingNotification answers that the mail would be sent.
func (u dryUsers) SendPendingNotification(context.Context, int64, wordpress.Notify, string) (bool, error) {
	return true, nil
}

// dryContacts reads HighLevel (or serves the known contact) and writes
// nothing; like dryUsers it names each method.
type dryContacts struct {
	real  Contacts
	known *highlevel.Contact
}

func (c dryContacts) CustomFieldID(ctx context.Context, idOrKey string) (string, error) {
	return c.real.CustomFieldID(ctx, idOrKey)
}

func (c dryContacts) Contact(ctx context.Context, id string) (*highlevel.Contact, error) {
	if c.known != nil && c.known.ID == id {
		k := *c.known
		return &k, nil
	}
	return c.real.Contact(ctx, id)
}

func (c dryContacts) UpdateCustomFields(context.Context, string, []highlevel.FieldWrite) error {
	return nil
}

// contact loads the contact from HighLevel, or takes it from the webhook
// body in payload mode.
func (s *Syncer) contact(ctx context.Context, req Request) (*highlevel.Contact, error) {
	if s.contacts == nil {
		if req.Contact == nil {
			return nil, refuse("payload mode: the webhook body carried no contact")
		}
		c := *req.Contact
		c.ID = req.ContactID
		return &c, nil
	}
	c, err := s.contacts.Contact(ctx, req.ContactID)
	if errors.Is(err, highlevel.ErrNotFound) {
		return nil, refuse("HighLevel has no contact %s", req.ContactID)
	}
	if err != nil {
		return nil, fmt.Errorf("load contact %s: %w", req.ContactID, err)
	}
	if c.ID == "" {
		c.ID = req.ContactID
	}
	return c, nil
}

// findUser returns the contact's user, or nil when it has none. A user
// linked by contact id wins over one with the same email. One request to
// WordPress finds it (wordpress.Client.FindUser).
func (s *Syncer) findUser(ctx context.Context, c *highlevel.Contact) (*wordpress.User, error) {
	ids, u, err := s.users.FindUser(ctx, s.cfg.ContactIDMetaKey, c.ID, c.Email)
	if err != nil {
		return nil, fmt.Errorf("find user of contact %s: %w", c.ID, err)
	}
	s.warnLinked(ctx, c, ids)
	return u, nil
}

func (s *Syncer) warnLinked(ctx context.Context, c *highlevel.Contact, ids []int64) {
	if len(ids) > 1 {
		s.logger.WarnContext(ctx, "several users are linked to one contact; using the oldest",
			slog.String("contact_id", c.ID), slog.Any("user_ids", ids))
	}
}

// newUser is the user create would make for the contact: its login,
// password, role, fields and meta, with the pending flags of what is left
// to do once it exists.
type newUser struct {
	wordpress.NewUser
	changed []string // the fields and meta keys it sets, for the Result
}

// newUserFor works out the contact's new user; an error refuses the
// create (no email, say).
func (s *Syncer) newUserFor(ctx context.Context, req Request, c *highlevel.Contact) (*newUser, error) {
	if c.Email == "" {
		return nil, refuse("contact %s has no email; WordPress needs one to create a user", c.ID)
	}
	fields, err := s.fieldValues(ctx, c)
	if err != nil {
		return nil, err
	}
	login, err := s.customValue(ctx, c, s.cfg.UsernameField)
	if err != nil {
		return nil, err
	}
	if login == "" {
		login = c.Email
	}
	// WordPress refuses a login with characters such as the "+" of a
	// plus-addressed email; make it one it takes.
	if login = wordpress.SanitizeLogin(login); login == "" {
		login = "hl-" + c.ID
	}
	password := req.Password
	if password == "" {
		if password, err = s.customValue(ctx, c, s.cfg.PasswordField); err != nil {
			return nil, err
		}
	}
	generated := password == ""
	if generated {
		password = generatePassword()
	}
	role := s.wantedRole(req, c)
	if role == "" {
		role = s.cfg.DefaultRole
	}
	meta := fields.meta
	meta[s.cfg.ContactIDMetaKey] = c.ID
	meta[s.cfg.TagsMetaKey] = tagList(c)
	changed := append(sortedKeys(fields.core), sortedKeys(meta)...)
	if req.SendNotification {
		meta[pendingNotificationKey] = "1"
	}
	if generated && s.cfg.ReturnPasswordField != "" {
		meta[pendingPasswordKey] = passwordSetAtCreation
	}
	if s.cfg.ReturnLoginLinkField != "" {
		meta[pendingLinkKey] = "1"
	}
	// One request creates the user with its meta: no user is ever left
	// without its contact link.
	return &newUser{NewUser: wordpress.NewUser{
		Username: login, Email: c.Email, Password: password, Roles: []string{role},
		FirstName: fields.core["first_name"], LastName: fields.core["last_name"],
		Nickname: fields.core["nickname"], Name: fields.core["display_name"],
		Description: fields.core["description"], URL: fields.core["url"], Meta: meta,
	}, changed: changed}, nil
}

// create makes the contact's user nu; with find, in the request that first
// looks the user up, and if it exists (or another request creates it
// meanwhile: a duplicate-email answer) it updates that user instead.
func (s *Syncer) create(ctx context.Context, req Request, c *highlevel.Contact, nu *newUser, find bool) (Result, error) {
	var (
		u   *wordpress.User
		err error
	)
	login := nu.Username
	for try := 0; ; try++ {
		if find && try == 0 {
			var ids []int64
			var created bool
			ids, u, created, err = s.users.FindOrCreateUser(ctx, s.cfg.ContactIDMetaKey, c.ID, nu.NewUser)
			if err == nil && !created {
				s.warnLinked(ctx, c, ids)
				return s.update(ctx, req, c, u)
			}
		} else {
			u, err = s.users.CreateUser(ctx, nu.NewUser)
		}
		if err == nil {
			break
		}
		if errors.Is(err, wordpress.ErrDuplicateEmail) || errors.Is(err, wordpress.ErrDuplicateLogin) {
			// Another request may have created this contact's user meanwhile.
			existing, ferr := s.findUser(ctx, c)
			if ferr != nil {
				return Result{}, ferr
			}
			if existing != nil {
				return s.update(ctx, req, c, existing)
			}
		}
		if !errors.Is(err, wordpress.ErrDuplicateLogin) || try == 2 {
			return Result{}, s.createError(c, err)
		}
		// The login belongs to somebody else: WP Fusion's answer, a number.
		nu.Username = login + "-" + strconv.Itoa(1000+rand.IntN(9000))
	}
	s.logger.InfoContext(ctx, "created user", slog.String("contact_id", c.ID), slog.Int64("user_id", u.ID))
	if nu.Meta[pendingPasswordKey] != nil {
		s.passwords.put(u.ID, heldPassword{password: nu.Password})
	}
	res := Result{UserID: u.ID, Created: true, Changed: nu.changed}
	return s.finishPending(ctx, c, u.ID, nu.Meta, res)
}

// createError turns a create failure into the error the caller sees.
func (s *Syncer) createError(c *highlevel.Contact, err error) error {
	switch {
	case errors.Is(err, wordpress.ErrInvalidRole):
		return refuse("WordPress refused the role: %v", err)
	case errors.Is(err, wordpress.ErrInvalidEmail):
		return refuse("WordPress refused the email of contact %s: %v", c.ID, err)
	case errors.Is(err, wordpress.ErrInvalidUsername):
		return refuse("WordPress refused the login of contact %s: %v", c.ID, err)
	case errors.Is(err, wordpress.ErrDuplicateLogin):
		return refuse("the login of contact %s is taken by another user", c.ID)
	case errors.Is(err, wordpress.ErrProtectedMeta):
		return refuse("WordPress refused a meta key of the field map: %v", err)
	}
	return fmt.Errorf("create user for contact %s: %w", c.ID, err)
}

// finishPending finishes what a user's creation left to do, as its pending
// meta says: WordPress's welcome notification, the password's return to
// HighLevel, then the set-password link's. A crash or a failure leaves the flags set, and a later sync
// of the contact finishes the job.
func (s *Syncer) finishPending(ctx context.Context, c *highlevel.Contact, userID int64, pending map[string]wordpress.MetaValue, res Result) (Result, error) {
	if pending[pendingNotificationKey] != nil {
		// The companion deletes the flag and sends the mail in one request,
		// flag first: the mail goes out at most once, however the sync ends.
		sent, err := s.users.SendPendingNotification(ctx, userID, wordpress.NotifyUser, pendingNotificationKey)
		if err != nil {
			return res, fmt.Errorf("send new-user notification to user %d: %w", userID, err)
		}
		res.Notified = sent
	}
	if state, _ := pending[pendingPasswordKey].(string); state != "" {
		switch err := s.finishPasswordReturn(ctx, c, userID, state); {
		case errors.Is(err, errReturnOff):
		case err != nil:
			return res, err
		default:
			res.PasswordReturned = true
		}
	}
	if pending[pendingLinkKey] != nil {
		switch err := s.finishLinkReturn(ctx, c, userID); {
		case errors.Is(err, errReturnOff):
		case err != nil:
			return res, err
		default:
			res.LoginLinkReturned = true
		}
	}
	return res, nil
}

// update brings an existing user in line with the contact.
func (s *Syncer) update(ctx context.Context, req Request, c *highlevel.Contact, u *wordpress.User) (Result, error) {
	if why := privilegedUser(u); why != "" {
		return Result{}, refuse("user %d is %s; hlbridge never changes administrators or users who can manage the site", u.ID, why)
	}
	res := Result{UserID: u.ID}
	keys := []string{s.cfg.ContactIDMetaKey, s.cfg.TagsMetaKey, pendingNotificationKey, pendingPasswordKey, pendingLinkKey}
	var fields fieldValues
	if req.Action != ActionUpdateTags {
		var err error
		if fields, err = s.fieldValues(ctx, c); err != nil {
			return Result{}, err
		}
		keys = append(keys, sortedKeys(fields.meta)...)
	}
	current, err := s.users.Meta(ctx, u.ID, keys...)
	if err != nil {
		return Result{}, fmt.Errorf("read meta of user %d: %w", u.ID, err)
	}
	if linked, _ := current[s.cfg.ContactIDMetaKey].(string); linked != "" && linked != c.ID {
		return Result{}, refuse("user %d has the email of contact %s but is linked to contact %s", u.ID, c.ID, linked)
	}

	want := map[string]wordpress.MetaValue{s.cfg.ContactIDMetaKey: c.ID}
	if c.Carries("tags") { // a payload that left the tags out leaves them alone
		want[s.cfg.TagsMetaKey] = tagList(c)
	}
	var up wordpress.UserUpdate
	if req.Action != ActionUpdateTags {
		up = s.userUpdate(c, u, fields.core)
		for k, v := range fields.meta {
			want[k] = v
		}
	}
	if role := s.wantedRole(req, c); role != "" {
		if roles := s.rolesAfter(u.Roles, role); !sameSet(roles, u.Roles) {
			up.Roles = roles
		}
	}
	changes := map[string]wordpress.MetaValue{}
	for k, v := range want {
		if !metaEqual(current[k], v) {
			changes[k] = v
		}
	}
	switch {
	case !up.Empty():
		// Fields and meta in one request.
		if len(changes) > 0 {
			up.Meta = changes
		}
		updated, err := s.users.UpdateUser(ctx, u.ID, up)
		switch {
		case errors.Is(err, wordpress.ErrInvalidEmail):
			return res, refuse("WordPress refused the email of contact %s for user %d (another user may have it)", c.ID, u.ID)
		case errors.Is(err, wordpress.ErrInvalidRole):
			return res, refuse("WordPress refused the role: %v", err)
		case errors.Is(err, wordpress.ErrProtectedMeta):
			return res, refuse("WordPress refused a meta key of the field map: %v", err)
		case err != nil:
			return res, fmt.Errorf("update user %d: %w", u.ID, err)
		}
		res.Changed = append(changedFields(u, updated), sortedKeys(changes)...)
	case len(changes) > 0:
		if _, err := s.users.SetMeta(ctx, u.ID, changes); err != nil {
			if errors.Is(err, wordpress.ErrProtectedMeta) {
				return res, refuse("WordPress refused a meta key of the field map: %v", err)
			}
			return res, fmt.Errorf("write meta of user %d: %w", u.ID, err)
		}
		res.Changed = sortedKeys(changes)
	}
	if current[pendingNotificationKey] != nil || current[pendingPasswordKey] != nil || current[pendingLinkKey] != nil {
		return s.finishPending(ctx, c, u.ID, current, res)
	}
	return res, nil
}

// userUpdate is what must change in u's core fields to match the contact.
func (s *Syncer) userUpdate(c *highlevel.Contact, u *wordpress.User, core map[string]string) wordpress.UserUpdate {
	var up wordpress.UserUpdate
	set := func(dst **string, have, want string) {
		if have != want {
			*dst = &want
		}
	}
	if c.Email != "" && !equalFoldTrim(u.Email, c.Email) {
		up.Email = &c.Email
	}
	for target, v := range core {
		switch target {
		case "first_name":
			set(&up.FirstName, u.FirstName, v)
		case "last_name":
			set(&up.LastName, u.LastName, v)
		case "nickname":
			set(&up.Nickname, u.Nickname, v)
		case "display_name":
			set(&up.Name, u.Name, v)
		case "description":
			set(&up.Description, u.Description, v)
		case "url":
			set(&up.URL, u.URL, v)
		}
	}
	return up
}
