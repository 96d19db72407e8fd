package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// recordedCall is one call the bridge made to a door, as the golden files
// show it.
type recordedCall struct {
	Call string `json:"call"`
	Args any    `json:"args,omitempty"`
}

// fakeUsers is an in-memory stand-in for WordPress used only by the
// mapping's unit tests; every behaviour of the real site is proven by the
// end-to-end tests against a real WordPress.
type fakeUsers struct {
	mu     sync.Mutex
	users  []*wordpress.User
	meta   map[int64]map[string]wordpress.MetaValue
	calls  []recordedCall
	nextID int64
}

func newFakeUsers(existing ...wordpress.User) *fakeUsers {
	f := &fakeUsers{meta: map[int64]map[string]wordpress.MetaValue{}, nextID: 100}
	for i := range existing {
		u := existing[i]
		f.users = append(f.users, &u)
		f.meta[u.ID] = map[string]wordpress.MetaValue{}
	}
	return f
}

func (f *fakeUsers) record(call string, args any) {
	f.calls = append(f.calls, recordedCall{Call: call, Args: args})
}

func notFound(op string) error {
	return &wordpress.Error{Op: op, Status: 404, Code: "rest_user_invalid_id", Message: "Invalid user ID."}
}

func (f *fakeUsers) UserByID(_ context.Context, id int64) (*wordpress.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.ID == id {
			c := *u
			return &c, nil
		}
	}
	return nil, notFound("read user")
}

func (f *fakeUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	ids, _ := f.UsersByMeta(ctx, key, value)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("FindUser", email)
	return f.find(ids, email)
}

// FindOrCreateUser is one call, as it is one request to the real site.
func (f *fakeUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	ids, _ := f.UsersByMeta(ctx, key, value)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("FindOrCreateUser", shownNewUser(nu))
	if ids, u, _ := f.find(ids, nu.Email); u != nil {
		return ids, u, false, nil
	}
	u, err := f.create(nu)
	return ids, u, err == nil, err
}

func (f *fakeUsers) find(ids []int64, email string) ([]int64, *wordpress.User, error) {
	for _, id := range ids {
		for _, u := range f.users {
			if u.ID == id {
				c := *u
				return ids, &c, nil
			}
		}
	}
	for _, u := range f.users {
		if email != "" && strings.EqualFold(u.Email, email) {
			c := *u
			return ids, &c, nil
		}
	}
	return ids, nil, nil
}

func (f *fakeUsers) UsersByMeta(_ context.Context, key, value string) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []int64
	for id, m := range f.meta {
		if m[key] == value {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (f *fakeUsers) CreateUser(_ context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateUser", shownNewUser(nu))
	return f.create(nu)
}

// shownNewUser is nu as the golden files record it: the password's kind, not the password.
func shownNewUser(nu wordpress.NewUser) wordpress.NewUser {
	nu.Password = "<" + passwordKind(nu.Password) + ">"
	return nu
}

func (f *fakeUsers) create(nu wordpress.NewUser) (*wordpress.User, error) {
	for _, u := range f.users {
		if strings.EqualFold(u.Username, nu.Username) {
			return nil, &wordpress.Error{Op: "create user", Status: 500, Code: "existing_user_login"}
		}
		if strings.EqualFold(u.Email, nu.Email) {
			return nil, &wordpress.Error{Op: "create user", Status: 500, Code: "existing_user_email"}
		}
	}
	f.nextID++
	u := &wordpress.User{ID: f.nextID, Username: nu.Username, Email: nu.Email, Roles: nu.Roles,
		FirstName: nu.FirstName, LastName: nu.LastName, Nickname: nu.Nickname, Name: nu.Name,
		Description: nu.Description, URL: nu.URL, Capabilities: map[string]bool{}}
	f.users = append(f.users, u)
	f.meta[u.ID] = map[string]wordpress.MetaValue{}
	f.applyMeta(u.ID, nu.Meta)
	c := *u
	return &c, nil
}

func (f *fakeUsers) applyMeta(id int64, values map[string]wordpress.MetaValue) {
	for k, v := range values {
		if v == nil {
			delete(f.meta[id], k)
		} else {
			f.meta[id][k] = v
		}
	}
}

// passwordKind keeps generated passwords out of golden files while still
// showing which password a call carried.
func passwordKind(p string) string {
	if len(p) == passwordLength && !strings.Contains(p, " ") && strings.ToLower(p) != p {
		return "generated"
	}
	return "from contact: " + p
}

func (f *fakeUsers) UpdateUser(_ context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	shown := up
	if up.Password != nil {
		shown.Password = new("<" + passwordKind(*up.Password) + ">")
	}
	f.record(fmt.Sprintf("UpdateUser %d", id), shown)
	for _, u := range f.users {
		if u.ID != id {
			continue
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&u.Email, up.Email)
		set(&u.FirstName, up.FirstName)
		set(&u.LastName, up.LastName)
		set(&u.Nickname, up.Nickname)
		set(&u.Name, up.Name)
		set(&u.Description, up.Description)
		set(&u.URL, up.URL)
		if up.Roles != nil {
			u.Roles = up.Roles
		}
		f.applyMeta(id, up.Meta)
		c := *u
		return &c, nil
	}
	return nil, notFound("update user")
}

func (f *fakeUsers) Meta(_ context.Context, id int64, keys ...string) (map[string]wordpress.MetaValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]wordpress.MetaValue{}
	for _, k := range keys {
		out[k] = f.meta[id][k]
	}
	return out, nil
}

func (f *fakeUsers) SetMeta(_ context.Context, id int64, values map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("SetMeta %d", id), values)
	f.applyMeta(id, values)
	return values, nil
}

func (f *fakeUsers) SendPendingNotification(_ context.Context, id int64, who wordpress.Notify, flag string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("SendPendingNotification %d %s", id, flag), who)
	if f.meta[id][flag] == nil {
		return false, nil
	}
	delete(f.meta[id], flag)
	return true, nil
}

func (f *fakeUsers) RemoveRoles(_ context.Context, id int64, roles []string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("RemoveRoles %d", id), roles)
	for _, u := range f.users {
		if u.ID == id {
			u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return slices.Contains(roles, r) })
			return u.Roles, nil
		}
	}
	return nil, notFound("remove roles")
}

func (f *fakeUsers) DeleteUser(_ context.Context, id, reassign int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("DeleteUser %d", id), reassign)
	f.users = slices.DeleteFunc(f.users, func(u *wordpress.User) bool { return u.ID == id })
	return nil
}

func (f *fakeUsers) PasswordResetLink(_ context.Context, id int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("PasswordResetLink %d", id), nil)
	return fmt.Sprintf("https://example.com/wp-login.php?action=rp&key=k%d&login=u%d", id, id), nil
}

// fakeContacts serves contacts from memory for the mapping's unit tests.
type fakeContacts struct {
	contacts map[string]highlevel.Contact
	fields   []highlevel.CustomField
	writes   []recordedCall
}

func (f *fakeContacts) Contact(_ context.Context, id string) (*highlevel.Contact, error) {
	c, ok := f.contacts[id]
	if !ok {
		return nil, fmt.Errorf("contact %s: %w", id, highlevel.ErrNotFound)
	}
	return &c, nil
}

func (f *fakeContacts) CustomFieldID(_ context.Context, idOrKey string) (string, error) {
	for _, cf := range f.fields {
		if cf.ID == idOrKey || cf.FieldKey == idOrKey || cf.FieldKey == "contact."+idOrKey {
			return cf.ID, nil
		}
	}
	return "", highlevel.ErrUnknownCustomField
}

func (f *fakeContacts) UpdateCustomFields(_ context.Context, contactID string, fields []highlevel.FieldWrite) error {
	shown := make([]highlevel.FieldWrite, len(fields))
	for i, fw := range fields {
		shown[i] = fw
		shown[i].Value = "<" + passwordKind(fmt.Sprint(fw.Value)) + ">"
	}
	f.writes = append(f.writes, recordedCall{Call: "UpdateCustomFields " + contactID, Args: shown})
	return nil
}

// mustJSON is for test failure messages.
func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
