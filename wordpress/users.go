package wordpress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// User is a WordPress user as the REST API shows it in the edit context.
type User struct {
	ID             int64           `json:"id"`
	Username       string          `json:"username"`
	Name           string          `json:"name"` // display name
	FirstName      string          `json:"first_name"`
	LastName       string          `json:"last_name"`
	Email          string          `json:"email"`
	URL            string          `json:"url"`
	Description    string          `json:"description"`
	Nickname       string          `json:"nickname"`
	Slug           string          `json:"slug"`
	Roles          []string        `json:"roles"`
	Capabilities   map[string]bool `json:"capabilities"`
	RegisteredDate string          `json:"registered_date"`
	// SuperAdmin reports a multisite super admin, who may do anything on
	// every site of the network whatever their role here (core REST shows
	// only the role). The companion plugin (1.2.0 and later) reports it;
	// it is false on a single site.
	SuperAdmin bool `json:"hlbridge_super_admin"`
}

// Can reports whether the user has the capability (or role) cap.
func (u *User) Can(cp string) bool { return u.Capabilities[cp] }

// HasRole reports whether role is one of the user's roles.
func (u *User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// NewUser is what CreateUser sends. Username, Email and Password are
// required by WordPress; empty optional fields are left out.
type NewUser struct {
	Username    string   `json:"username"`
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	Roles       []string `json:"roles,omitempty"`
	FirstName   string   `json:"first_name,omitempty"`
	LastName    string   `json:"last_name,omitempty"`
	Nickname    string   `json:"nickname,omitempty"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	URL         string   `json:"url,omitempty"`
	// Meta is user meta written in the same request (through the companion
	// plugin's hlbridge_meta field), with the values SetMeta takes. A
	// refused key refuses the whole request: no user is created.
	Meta map[string]MetaValue `json:"hlbridge_meta,omitempty"`
}

// UserUpdate is what UpdateUser sends: a nil field is left as it is, a
// pointer to "" clears it. Roles, when not nil, replaces the user's roles as
// a set. WordPress mails the user when the email or the password changes.
type UserUpdate struct {
	Email       *string  `json:"email,omitempty"`
	Password    *string  `json:"password,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	FirstName   *string  `json:"first_name,omitempty"`
	LastName    *string  `json:"last_name,omitempty"`
	Nickname    *string  `json:"nickname,omitempty"`
	Name        *string  `json:"name,omitempty"`
	Description *string  `json:"description,omitempty"`
	URL         *string  `json:"url,omitempty"`
	// Meta is user meta written in the same request, as in NewUser.
	Meta map[string]MetaValue `json:"hlbridge_meta,omitempty"`
}

// Empty reports whether the update would change nothing.
func (u UserUpdate) Empty() bool {
	return u.Email == nil && u.Password == nil && u.Roles == nil && u.FirstName == nil &&
		u.LastName == nil && u.Nickname == nil && u.Name == nil && u.Description == nil && u.URL == nil && len(u.Meta) == 0
}

var editContext = url.Values{"context": {"edit"}}

// Me returns the authenticated user with its capabilities. WordPress runs a
// request with a wrong application password as an anonymous visitor, so
// this is the call that proves the credentials: it fails with
// ErrUnauthorized when they are not accepted.
func (c *Client) Me(ctx context.Context) (*User, error) {
	var u User
	if _, err := c.do(ctx, call{op: "read current user", method: http.MethodGet,
		route: "/wp/v2/users/me", query: editContext, out: &u}); err != nil {
		return nil, err
	}
	return &u, nil
}

// UserByID returns the user with this id, or ErrNotFound.
func (c *Client) UserByID(ctx context.Context, id int64) (*User, error) {
	var u User
	if _, err := c.do(ctx, call{op: "read user " + strconv.FormatInt(id, 10), method: http.MethodGet,
		route: userRoute(id), query: editContext, out: &u}); err != nil {
		return nil, err
	}
	return &u, nil
}

// UserByEmail returns the user whose email is exactly email, compared
// without regard to case, or ErrNotFound. (WordPress's search is a substring
// match over several columns; this filters its answer.)
func (c *Client) UserByEmail(ctx context.Context, email string) (*User, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, &Error{Op: "find user by email", Err: errors.New("empty email")}
	}
	return c.findOne(ctx, "find user by email", email, func(u *User) bool { return strings.EqualFold(u.Email, email) })
}

// UserByLogin returns the user whose login is exactly login, compared
// without regard to case as WordPress does, or ErrNotFound.
func (c *Client) UserByLogin(ctx context.Context, login string) (*User, error) {
	login = strings.TrimSpace(login)
	if login == "" {
		return nil, &Error{Op: "find user by login", Err: errors.New("empty login")}
	}
	return c.findOne(ctx, "find user by login", login, func(u *User) bool { return strings.EqualFold(u.Username, login) })
}

// findOne pages through a search and returns the first user that match accepts.
func (c *Client) findOne(ctx context.Context, op, search string, match func(*User) bool) (*User, error) {
	const perPage = 100
	for page := 1; ; page++ {
		var users []User
		q := url.Values{
			"context":  {"edit"},
			"search":   {search},
			"per_page": {strconv.Itoa(perPage)},
			"page":     {strconv.Itoa(page)},
			"orderby":  {"id"},
		}
		h, err := c.do(ctx, call{op: op, method: http.MethodGet, route: "/wp/v2/users", query: q, out: &users})
		if err != nil {
			return nil, err
		}
		for i := range users {
			if match(&users[i]) {
				return &users[i], nil
			}
		}
		pages, _ := strconv.Atoi(h.Get("X-WP-TotalPages"))
		if len(users) < perPage || page >= pages {
			return nil, &Error{Op: op, Status: http.StatusNotFound, Code: "hlbridge_no_match", Message: "no user matches exactly"}
		}
	}
}

// CreateUser creates a user and returns it. A taken email or login comes
// back as ErrDuplicateEmail or ErrDuplicateLogin, an unknown role as
// ErrInvalidRole. Creating a user through REST sends no email; see
// SendPendingNotification.
func (c *Client) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	if err := checkMetaValues("create user", nu.Meta); err != nil {
		return nil, err
	}
	var u User
	if _, err := c.do(ctx, call{op: "create user", method: http.MethodPost, route: "/wp/v2/users",
		query: editContext, body: nu, out: &u}); err != nil {
		return nil, err
	}
	return &u, nil
}

// UpdateUser changes the fields set in up and returns the user as it is now.
func (c *Client) UpdateUser(ctx context.Context, id int64, up UserUpdate) (*User, error) {
	if up.Roles != nil && len(up.Roles) == 0 {
		return nil, &Error{Op: "update user", Err: errors.New("roles must not be an empty set")}
	}
	if err := checkMetaValues("update user", up.Meta); err != nil {
		return nil, err
	}
	var u User
	if _, err := c.do(ctx, call{op: "update user " + strconv.FormatInt(id, 10), method: http.MethodPost,
		route: userRoute(id), query: editContext, body: up, out: &u}); err != nil {
		return nil, err
	}
	return &u, nil
}

// DeleteUser deletes the user for good and gives their content to reassign.
func (c *Client) DeleteUser(ctx context.Context, id, reassign int64) error {
	q := url.Values{"force": {"true"}, "reassign": {strconv.FormatInt(reassign, 10)}}
	_, err := c.do(ctx, call{op: "delete user " + strconv.FormatInt(id, 10), method: http.MethodDelete,
		route: userRoute(id), query: q})
	return err
}

func userRoute(id int64) string { return fmt.Sprintf("/wp/v2/users/%d", id) }

// MaxLoginLength is the longest login WordPress accepts.
const MaxLoginLength = 60

// SanitizeLogin turns s (typically an email address) into a login WordPress
// accepts: its REST API refuses any login that sanitize_user($login, true)
// would change, which allows only ASCII letters, digits, space, "_", ".",
// "-" and "@". Other characters (the "+" of plus-addressing, accents)
// become "-", runs of white space one space, and the result is cut to
// MaxLoginLength.
func SanitizeLogin(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		space = false
	}
	out := b.String()
	if len(out) > MaxLoginLength {
		out = out[:MaxLoginLength]
	}
	return strings.TrimSpace(out)
}
