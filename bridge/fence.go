package bridge

import (
	"context"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// fenceKey carries a sync's write fence in its context.
type fenceKey struct{}

// WithWriteFence returns ctx with check, which every write to WordPress
// (and the password written back to HighLevel) calls first: a non-nil
// error stops the write. The queue uses it for its lease, so that a
// process resumed after its jobs were taken over writes nothing more for
// them. Checking before each write is deterministic, where a cancelled
// context would race a timer against the write. The check runs when the
// sync asks for the write, and again in the client once the write has its
// place (wordpress.WithWriteCheck, highlevel.WithWriteCheck): a write that
// waited out a pause of the process behind others is stopped too.
func WithWriteFence(ctx context.Context, check func() error) context.Context {
	ctx = wordpress.WithWriteCheck(ctx, check)
	ctx = highlevel.WithWriteCheck(ctx, check)
	return context.WithValue(ctx, fenceKey{}, check)
}

// WriteFenceErr runs ctx's write fence, if any: nil means writes may go on.
func WriteFenceErr(ctx context.Context) error {
	if check, ok := ctx.Value(fenceKey{}).(func() error); ok {
		return check()
	}
	return nil
}

// fencedUsers checks the fence before each write to WordPress.
type fencedUsers struct{ Users }

func (u fencedUsers) CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return nil, err
	}
	return u.Users.CreateUser(ctx, nu)
}

func (u fencedUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return nil, nil, false, err
	}
	return u.Users.FindOrCreateUser(ctx, key, value, nu)
}

func (u fencedUsers) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return nil, err
	}
	return u.Users.UpdateUser(ctx, id, up)
}

func (u fencedUsers) SetMeta(ctx context.Context, id int64, values map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return nil, err
	}
	return u.Users.SetMeta(ctx, id, values)
}

func (u fencedUsers) SendPendingNotification(ctx context.Context, id int64, who wordpress.Notify, flag string) (bool, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return false, err
	}
	return u.Users.SendPendingNotification(ctx, id, who, flag)
}

func (u fencedUsers) RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return nil, err
	}
	return u.Users.RemoveRoles(ctx, id, roles)
}

func (u fencedUsers) DeleteUser(ctx context.Context, id, reassign int64) error {
	if err := WriteFenceErr(ctx); err != nil {
		return err
	}
	return u.Users.DeleteUser(ctx, id, reassign)
}

// PasswordResetLink is a write: it replaces the user's reset key.
func (u fencedUsers) PasswordResetLink(ctx context.Context, id int64) (string, error) {
	if err := WriteFenceErr(ctx); err != nil {
		return "", err
	}
	return u.Users.PasswordResetLink(ctx, id)
}

// fencedContacts checks the fence before writing to HighLevel.
type fencedContacts struct{ Contacts }

func (c fencedContacts) UpdateCustomFields(ctx context.Context, contactID string, fields []highlevel.FieldWrite) error {
	if err := WriteFenceErr(ctx); err != nil {
		return err
	}
	return c.Contacts.UpdateCustomFields(ctx, contactID, fields)
}
