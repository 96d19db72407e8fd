package bridgetest

import (
	"context"
	"sync/atomic"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/wordpress"
)

// CountingUsers wraps a bridge.Users and counts the calls the bridge makes
// to WordPress, by kind; it is safe for concurrent use. Set Users before
// the first call.
type CountingUsers struct {
	bridge.Users
	// Reads counts UserByID, FindUser, UsersByMeta and Meta, and a
	// FindOrCreateUser that created nothing; the others count one write
	// call each (a FindOrCreateUser that created, one create).
	Reads, Creates, Updates, Metas, Notifications atomic.Int64
}

// Writes is the number of calls that write: creates, updates (role
// removals and deletions among them), meta writes (set-password links
// among them) and notifications.
func (c *CountingUsers) Writes() int64 {
	return c.Creates.Load() + c.Updates.Load() + c.Metas.Load() + c.Notifications.Load()
}

func (c *CountingUsers) UserByID(ctx context.Context, id int64) (*wordpress.User, error) {
	c.Reads.Add(1)
	return c.Users.UserByID(ctx, id)
}

func (c *CountingUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	c.Reads.Add(1)
	return c.Users.FindUser(ctx, key, value, email)
}

func (c *CountingUsers) UsersByMeta(ctx context.Context, key, value string) ([]int64, error) {
	c.Reads.Add(1)
	return c.Users.UsersByMeta(ctx, key, value)
}

func (c *CountingUsers) Meta(ctx context.Context, id int64, keys ...string) (map[string]wordpress.MetaValue, error) {
	c.Reads.Add(1)
	return c.Users.Meta(ctx, id, keys...)
}

func (c *CountingUsers) CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	c.Creates.Add(1)
	return c.Users.CreateUser(ctx, nu)
}

// FindOrCreateUser counts as a create when it created, else as a read.
func (c *CountingUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	ids, u, created, err := c.Users.FindOrCreateUser(ctx, key, value, nu)
	if created {
		c.Creates.Add(1)
	} else {
		c.Reads.Add(1)
	}
	return ids, u, created, err
}

func (c *CountingUsers) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	c.Updates.Add(1)
	return c.Users.UpdateUser(ctx, id, up)
}

func (c *CountingUsers) SetMeta(ctx context.Context, id int64, v map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error) {
	c.Metas.Add(1)
	return c.Users.SetMeta(ctx, id, v)
}

func (c *CountingUsers) SendPendingNotification(ctx context.Context, id int64, who wordpress.Notify, flag string) (bool, error) {
	c.Notifications.Add(1)
	return c.Users.SendPendingNotification(ctx, id, who, flag)
}

func (c *CountingUsers) RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error) {
	c.Updates.Add(1)
	return c.Users.RemoveRoles(ctx, id, roles)
}

func (c *CountingUsers) DeleteUser(ctx context.Context, id, reassign int64) error {
	c.Updates.Add(1)
	return c.Users.DeleteUser(ctx, id, reassign)
}

func (c *CountingUsers) PasswordResetLink(ctx context.Context, id int64) (string, error) {
	c.Metas.Add(1)
	return c.Users.PasswordResetLink(ctx, id)
}
