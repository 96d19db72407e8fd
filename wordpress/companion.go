package wordpress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// CompanionStatus is what the companion plugin reports about itself.
type CompanionStatus struct {
	Plugin     string `json:"plugin"`
	Version    string `json:"version"`
	WordPress  string `json:"wordpress"`
	Multisite  bool   `json:"multisite"`
	MetaPrefix string `json:"meta_prefix"`
	// Since companion 1.4.1: how many users the site has, and whether user
	// meta has an index that finds a value (nil from an older companion).
	Users          int64  `json:"users"`
	MetaValueIndex *bool  `json:"meta_value_index"`
	UsermetaTable  string `json:"usermeta_table"`
}

// Companion returns the companion plugin's status, or ErrCompanionMissing
// when the site does not have it.
func (c *Client) Companion(ctx context.Context) (*CompanionStatus, error) {
	var st CompanionStatus
	if _, err := c.do(ctx, call{op: "read companion status", method: http.MethodGet,
		route: "/hlbridge/v1/status", out: &st}); err != nil {
		return nil, err
	}
	return &st, nil
}

// MinCompanionVersion is the oldest companion plugin this client works
// with. 1.2.0 reports multisite super admins (User.SuperAdmin), without
// which a super admin who is a subscriber here would look harmless; makes
// creating a user atomic per email; and sends a pending new-user
// notification at most once (SendPendingNotification). 1.3.0 finds a
// contact's user in one request (FindUser); 1.4.0 finds it or creates it
// in one request (FindOrCreateUser).
const MinCompanionVersion = "1.4.0"

// versionLess compares dotted version numbers: "1.9.0" < "1.10.0".
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// RequiredCapabilities are what the bridge's WordPress user must be able to
// do: find users by email, create them, edit them and set their roles.
var RequiredCapabilities = []string{"list_users", "create_users", "edit_users", "promote_users"}

// Verify proves that the site answers, that it accepts the credentials,
// that their user has RequiredCapabilities and that the companion plugin is
// installed. It returns the companion's status.
func (c *Client) Verify(ctx context.Context) (*CompanionStatus, error) {
	me, err := c.Me(ctx)
	if errors.Is(err, ErrUnauthorized) {
		return nil, fmt.Errorf("wordpress: the site did not accept the application password for user %q (check the username, the password, and that the site allows application passwords over this scheme): %w", c.user, err)
	}
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, cp := range RequiredCapabilities {
		if !me.Can(cp) {
			missing = append(missing, cp)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("wordpress: user %q lacks the capabilities %s: use an administrator's application password: %w",
			c.user, strings.Join(missing, ", "), ErrForbidden)
	}
	st, err := c.Companion(ctx)
	if errors.Is(err, ErrCompanionMissing) {
		return nil, fmt.Errorf("wordpress: install wordpress/companion/hlbridge-companion.php in wp-content/mu-plugins: %w", err)
	}
	if err != nil {
		return nil, err
	}
	if versionLess(st.Version, MinCompanionVersion) {
		return nil, fmt.Errorf("wordpress: the site's hlbridge companion plugin is version %s, and hlbridge needs %s or later: update the plugin by copying wordpress/companion/hlbridge-companion.php over wp-content/mu-plugins/hlbridge-companion.php: %w",
			st.Version, MinCompanionVersion, ErrCompanionMissing)
	}
	return st, nil
}

// MetaValue is one user meta value as the companion plugin reads and
// writes it: nil (absent, or delete on write), a string, or a list of
// strings (stored by WordPress as a PHP-serialized array, the shape WP
// Fusion uses for its tags).
type MetaValue = any

type metaBody struct {
	ID   int64                      `json:"id,omitempty"`
	Meta map[string]json.RawMessage `json:"meta"`
}

// Meta reads the user meta keys of user id. A key the user does not have
// maps to nil. Protected keys are refused with ErrProtectedMeta.
func (c *Client) Meta(ctx context.Context, id int64, keys ...string) (map[string]MetaValue, error) {
	if len(keys) == 0 {
		return map[string]MetaValue{}, nil
	}
	var out metaBody
	op := "read meta of user " + strconv.FormatInt(id, 10)
	if _, err := c.do(ctx, call{op: op, method: http.MethodGet, route: metaRoute(id),
		query: url.Values{"keys": {strings.Join(keys, ",")}}, out: &out}); err != nil {
		return nil, err
	}
	return decodeMeta(op, out.Meta)
}

// SetMeta writes user meta of user id: each value a string, a []string, or
// nil to delete the key. The companion checks every key before writing
// any, so a refused key writes nothing. It returns the values as stored.
func (c *Client) SetMeta(ctx context.Context, id int64, values map[string]MetaValue) (map[string]MetaValue, error) {
	op := "write meta of user " + strconv.FormatInt(id, 10)
	if err := checkMetaValues(op, values); err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return map[string]MetaValue{}, nil
	}
	var out metaBody
	if _, err := c.do(ctx, call{op: op, method: http.MethodPost, route: metaRoute(id),
		body: map[string]any{"meta": values}, out: &out}); err != nil {
		return nil, err
	}
	return decodeMeta(op, out.Meta)
}

// checkMetaValues refuses, before anything is sent, a value the companion
// would not store.
func checkMetaValues(op string, values map[string]MetaValue) error {
	for k, v := range values {
		switch v.(type) {
		case nil, string, []string:
		default:
			return &Error{Op: op, Err: fmt.Errorf("meta %q: value must be a string, a list of strings or nil, not %T", k, v)}
		}
	}
	return nil
}

func decodeMeta(op string, raw map[string]json.RawMessage) (map[string]MetaValue, error) {
	vals := make(map[string]MetaValue, len(raw))
	for k, r := range raw {
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, &Error{Op: op, Err: fmt.Errorf("meta %q: %w", k, err)}
		}
		switch t := v.(type) {
		case nil, string:
			vals[k] = t
		case []any:
			list := make([]string, 0, len(t))
			for _, e := range t {
				list = append(list, fmt.Sprint(e))
			}
			vals[k] = list
		default:
			vals[k] = fmt.Sprint(t)
		}
	}
	return vals, nil
}

// UsersByMeta returns the ids, ascending, of the users whose meta key has
// exactly value (e.g. the users linked to one HighLevel contact).
func (c *Client) UsersByMeta(ctx context.Context, key, value string) ([]int64, error) {
	var out struct {
		Users []int64 `json:"users"`
	}
	if _, err := c.do(ctx, call{op: "find users by meta " + key, method: http.MethodGet,
		route: "/hlbridge/v1/users", query: url.Values{"meta_key": {key}, "meta_value": {value}}, out: &out}); err != nil {
		return nil, err
	}
	slices.Sort(out.Users)
	return out.Users, nil
}

// FindUser finds a contact's user in one request: ids are the users whose
// meta key has exactly value, ascending, and u is the oldest of them that
// still exists, else the oldest user whose email is email without regard
// to case ("" skips the email), else nil. (Before companion 1.3.0 this took
// UsersByMeta, then UserByID or UserByEmail: two requests, or three.)
func (c *Client) FindUser(ctx context.Context, key, value, email string) (ids []int64, u *User, err error) {
	var out struct {
		Users []int64 `json:"users"`
		User  *User   `json:"user"`
	}
	if _, err := c.do(ctx, call{op: "find user by meta " + key + " or email", method: http.MethodGet, route: "/hlbridge/v1/users",
		query: url.Values{"meta_key": {key}, "meta_value": {value}, "email": {strings.TrimSpace(email)}}, out: &out}); err != nil {
		return nil, nil, err
	}
	slices.Sort(out.Users)
	return out.Users, out.User, nil
}

// FindOrCreateUser is FindUser(key, value, nu.Email) and, when that finds
// no user, CreateUser(nu), in one request: u is the user found, or the one
// created when created is true; ids are the users linked by key and value,
// ascending. The create fails as CreateUser's does (ErrDuplicateEmail when
// another request created a user with the email since the lookup), and
// nothing is created then.
func (c *Client) FindOrCreateUser(ctx context.Context, key, value string, nu NewUser) (ids []int64, u *User, created bool, err error) {
	if err := checkMetaValues("find or create user", nu.Meta); err != nil {
		return nil, nil, false, err
	}
	body := struct {
		MetaKey   string  `json:"meta_key"`
		MetaValue string  `json:"meta_value"`
		User      NewUser `json:"user"`
	}{key, value, nu}
	var out struct {
		Users   []int64 `json:"users"`
		User    *User   `json:"user"`
		Created bool    `json:"created"`
	}
	if _, err := c.do(ctx, call{op: "find user by meta " + key + " or email, else create it", method: http.MethodPost,
		route: "/hlbridge/v1/users", body: body, out: &out}); err != nil {
		return nil, nil, false, err
	}
	if out.User == nil {
		return nil, nil, false, &Error{Op: "find or create user", Err: errors.New("the companion answered with no user")}
	}
	slices.Sort(out.Users)
	return out.Users, out.User, out.Created, nil
}

// Notify names who gets WordPress's new-user notification.
type Notify string

// Recipients of the new-user notification, as wp_new_user_notification takes them.
const (
	NotifyUser  Notify = "user"  // the user: "Login Details" with a link to set a password
	NotifyAdmin Notify = "admin" // the site admin: "New User Registration"
	NotifyBoth  Notify = "both"
)

// SendPendingNotification sends WordPress's new-user notification to user
// id only while the user has the meta flag (e.g. a "pending notification"
// mark set when the user was created), and has the companion delete the
// flag before it sends, in the same request. However often it is called,
// concurrently or after a failure, the mail goes out at most once; a call
// that breaks off midway may leave it unsent. sent is false when the flag
// was not set, or when wp_mail reported a failure (the flag is gone then
// too).
func (c *Client) SendPendingNotification(ctx context.Context, id int64, who Notify, flag string) (sent bool, err error) {
	if who == "" {
		who = NotifyUser
	}
	if flag == "" {
		return false, &Error{Op: "send pending notification", Err: errors.New("no flag")}
	}
	var out struct {
		Sent    bool `json:"sent"`
		Pending bool `json:"pending"`
	}
	_, err = c.do(ctx, call{op: "send new-user notification to user " + strconv.FormatInt(id, 10),
		method: http.MethodPost, route: fmt.Sprintf("/hlbridge/v1/users/%d/notify", id),
		body: map[string]string{"notify": string(who), "pending_key": flag}, out: &out})
	if err != nil {
		return false, err
	}
	return out.Pending && out.Sent, nil
}

func metaRoute(id int64) string { return fmt.Sprintf("/hlbridge/v1/users/%d/meta", id) }

// RemoveRoles takes roles from user id through the companion plugin and
// returns the roles the user holds afterwards, which may be none (core REST
// ignores an empty roles list, so it cannot leave a user without a role).
// Roles the user does not hold are skipped.
func (c *Client) RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error) {
	var out struct {
		Roles []string `json:"roles"`
	}
	if roles == nil {
		roles = []string{}
	}
	if _, err := c.do(ctx, call{op: "remove roles of user " + strconv.FormatInt(id, 10), method: http.MethodPost,
		route: fmt.Sprintf("/hlbridge/v1/users/%d/roles", id), body: map[string][]string{"remove": roles}, out: &out}); err != nil {
		return nil, err
	}
	return out.Roles, nil
}

// PasswordResetLink has WordPress make its own set-password link for user
// id (wp-login.php?action=rp&key=…&login=…), as "Lost your password?" does:
// WordPress stores the key hashed and lets it expire (a day by default),
// and a new link replaces the previous one. The link is a secret: callers
// must not log or store it. Needs the companion plugin.
func (c *Client) PasswordResetLink(ctx context.Context, id int64) (string, error) {
	var out struct {
		Link string `json:"link"`
	}
	if _, err := c.do(ctx, call{op: "make the set-password link of user " + strconv.FormatInt(id, 10), method: http.MethodPost,
		route: fmt.Sprintf("/hlbridge/v1/users/%d/reset-link", id), out: &out}); err != nil {
		return "", err
	}
	if out.Link == "" {
		return "", &Error{Op: "make the set-password link of user " + strconv.FormatInt(id, 10), Err: ErrNotWordPress}
	}
	return out.Link, nil
}
