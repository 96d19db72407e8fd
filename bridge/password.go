package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// passwordAlphabet leaves out characters that are easy to misread or that
// break when a password is pasted into an email template or a URL.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#%*-_"

// passwordLength gives about 119 bits of entropy with passwordAlphabet.
const passwordLength = 20

// generatePassword returns a random password from crypto/rand.
func generatePassword() string {
	b := make([]byte, passwordLength)
	limit := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic("crypto/rand failed: " + err.Error()) // never on a supported OS
		}
		b[i] = passwordAlphabet[n.Int64()]
	}
	return string(b)
}

// The states of the pending-password meta (pendingPasswordKey). It never
// holds a password.
const (
	// passwordSetAtCreation: the user was created with a generated password
	// that has not reached HighLevel yet. ("1", the value older versions
	// wrote, so their users are finished the same way.)
	passwordSetAtCreation = "1"
	// passwordResetForReturn: the one recovery reset has been spent.
	passwordResetForReturn = "reset"
)

// finishPasswordReturn writes the password hlbridge generated for user
// userID to the contact's ReturnPasswordField and clears the pending flag.
//
// Why it works this way. The password exists only in the memory of the
// process that set it: it is stored nowhere (not in the store, not in
// WordPress meta, not in an event), so nothing at rest holds a secret. That
// gives three cases:
//
//   - The process still holds it (s.passwords): a retry after a 429, a 5xx
//     or a time-out returns that same password. No reset.
//   - It is lost (the process stopped, or the retry runs in another process)
//     and the flag still says passwordSetAtCreation: the only way to make
//     what HighLevel holds log in is to set a new password. This recovery
//     reset happens at most once per user: the flag is moved to
//     passwordResetForReturn BEFORE the reset, so a crash between the two
//     leaves the flag spent and the password untouched, never two resets.
//   - It is lost and the recovery reset is spent: hlbridge gives up, clears
//     the flag and refuses with a reason, once. The user keeps their
//     password and can choose another with "Lost your password?".
//
// A permanent failure of the return (no such custom field, a 4xx other than
// 429) also clears the flag and refuses with the reason, once; it is checked
// before any reset, so an unknown field never costs one. So hlbridge sets a
// password when it creates a user and at most once more, WordPress's
// "Password Changed" mail goes out at most once, and a password the user
// chose later is never touched. After a return that succeeded, what
// HighLevel holds is what WordPress holds.
func (s *Syncer) finishPasswordReturn(ctx context.Context, c *highlevel.Contact, userID int64, state string) error {
	if s.contacts == nil || s.cfg.ReturnPasswordField == "" {
		// Set while returning was on; it has been turned off since.
		s.logger.WarnContext(ctx, "returning passwords is off: dropping a user's pending return",
			slog.String("contact_id", c.ID), slog.Int64("user_id", userID))
		if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingPasswordKey: nil}); err != nil {
			return fmt.Errorf("clear pending password flag of user %d: %w", userID, err)
		}
		s.passwords.drop(userID)
		return errReturnOff
	}
	fieldID, err := s.contacts.CustomFieldID(ctx, s.cfg.ReturnPasswordField)
	if errors.Is(err, highlevel.ErrUnknownCustomField) {
		return s.abandonReturn(ctx, userID, fmt.Sprintf("HighLevel has no custom field %q to return the password of user %d to",
			s.cfg.ReturnPasswordField, userID))
	}
	if err != nil {
		return fmt.Errorf("resolve return password field: %w", err)
	}
	password, ok := s.passwords.get(userID)
	if !ok {
		if state != passwordSetAtCreation {
			return s.abandonReturn(ctx, userID, fmt.Sprintf("the password of user %d may not have reached HighLevel: hlbridge stopped while returning it, and it resets a password at most once (the user can choose one with \"Lost your password?\")", userID))
		}
		if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingPasswordKey: passwordResetForReturn}); err != nil {
			return fmt.Errorf("mark the password reset of user %d: %w", userID, err)
		}
		password = generatePassword()
		if _, err := s.users.UpdateUser(ctx, userID, wordpress.UserUpdate{Password: &password}); err != nil {
			// Whether WordPress took it is unknown; the flag says the reset
			// is spent, so the next sync gives up rather than reset again.
			return fmt.Errorf("reset password of user %d: %w", userID, err)
		}
		s.logger.InfoContext(ctx, "reset the password of a user whose generated password never reached HighLevel",
			slog.String("contact_id", c.ID), slog.Int64("user_id", userID))
		s.passwords.put(userID, password)
	}
	err = s.contacts.UpdateCustomFields(ctx, c.ID, []highlevel.FieldWrite{{ID: fieldID, Value: password, Secret: true}})
	switch {
	case err == nil:
	case highlevel.Retryable(err):
		// The password stays in memory for the retry.
		return fmt.Errorf("return password to contact %s: %w", c.ID, err)
	default:
		return s.abandonReturn(ctx, userID, fmt.Sprintf("HighLevel refused the password of user %d for contact %s: %v", userID, c.ID, err))
	}
	if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingPasswordKey: nil}); err != nil {
		// Kept in memory: the retry returns the same password again.
		return fmt.Errorf("clear pending password flag of user %d: %w", userID, err)
	}
	s.passwords.drop(userID)
	return nil
}

// errReturnOff says a pending return was dropped because returning
// passwords is off; the sync itself went well.
var errReturnOff = errors.New("returning passwords is off")

// abandonReturn gives up returning user userID's password: it clears the
// flag, so later syncs never touch the password, and refuses with reason.
func (s *Syncer) abandonReturn(ctx context.Context, userID int64, reason string) error {
	if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingPasswordKey: nil}); err != nil {
		return fmt.Errorf("clear pending password flag of user %d: %w", userID, err)
	}
	s.passwords.drop(userID)
	return refuse("%s", reason)
}

// passwordMemo holds the passwords hlbridge set but has not returned to
// HighLevel yet, by user id, in this process's memory only. An entry lives
// from the password's setting until it was returned or given up; a sync
// abandoned after its last attempt leaves one small entry behind. The zero
// value is ready to use.
type passwordMemo struct {
	mu sync.Mutex
	m  map[int64]string
}

func (p *passwordMemo) put(userID int64, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[int64]string)
	}
	p.m[userID] = password
}

func (p *passwordMemo) get(userID int64) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.m[userID]
	return pw, ok
}

func (p *passwordMemo) drop(userID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, userID)
}
