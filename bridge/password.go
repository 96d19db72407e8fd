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
	// passwordResetting: the one recovery reset was started; whether
	// WordPress took it is not known.
	passwordResetting = "resetting"
	// passwordReset: WordPress took the recovery reset. Written in the same
	// request as the new password, so it is the proof that it took.
	passwordReset = "reset"
)

// finishPasswordReturn writes the password hlbridge generated for user
// userID to the contact's ReturnPasswordField and clears the pending flag.
//
// Why it works this way. A generated password exists only in the memory of
// the process that set it (s.passwords): it is stored nowhere, not in the
// store, not in WordPress meta, not in an event, so nothing at rest holds a
// secret. That gives these cases:
//
//   - The process still holds the password: a retry after a 429, a 5xx or a
//     time-out returns that same password. No reset.
//   - It is lost (the process stopped, or another process runs the retry)
//     and the flag still says passwordSetAtCreation: the only way to make
//     what HighLevel holds log in is a new password. This recovery reset
//     happens at most once per user. The new password goes into memory,
//     the flag moves to passwordResetting, and then one request sets the
//     password and moves the flag to passwordReset. After a failed reset
//     request the flag tells whether WordPress took it: passwordReset, so
//     return the password; passwordResetting, so the same process sends the
//     same password again (it did not take). A process that finds
//     passwordResetting or passwordReset without the password in memory
//     cannot know or return what WordPress holds, and must not reset again.
//   - So then hlbridge gives up: it clears the flag and refuses with a
//     reason, once. The user keeps their password and can choose another
//     with "Lost your password?".
//
// A permanent failure of the return (no such custom field, a 4xx other than
// 429) also clears the flag and refuses with the reason, once; the field is
// resolved before any reset, so an unknown field never costs one. So
// hlbridge sets a password when it creates a user and at most once more
// (the one way to two: WordPress dying between the two writes of the reset
// request, then the retry sending the same password again), and a password
// the user chose later is never touched. After a return that succeeded,
// what HighLevel holds is what WordPress holds.
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
	held, ok := s.passwords.get(userID)
	switch {
	case ok && !held.reset && state == passwordSetAtCreation:
		// The password set at creation: return it.
	case ok && held.reset && state == passwordReset:
		// The recovery reset took: return its password.
	case ok && held.reset && state != passwordReset, !ok && state == passwordSetAtCreation:
		if !ok {
			held = heldPassword{password: generatePassword(), reset: true}
			s.passwords.put(userID, held)
		}
		if err := s.resetPassword(ctx, c, userID, state, held.password); err != nil {
			return err
		}
	default:
		return s.abandonReturn(ctx, userID, fmt.Sprintf("the password of user %d may not have reached HighLevel: the hlbridge process that set it stopped before returning it, and hlbridge resets a password at most once (the user can choose one with \"Lost your password?\")", userID))
	}
	err = s.contacts.UpdateCustomFields(ctx, c.ID, []highlevel.FieldWrite{{ID: fieldID, Value: held.password, Secret: true}})
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

// resetPassword is the one recovery reset: it marks it started, then sets
// password and marks it taken in one request. Called again after a failure,
// with the same password, it repeats only what did not take.
func (s *Syncer) resetPassword(ctx context.Context, c *highlevel.Contact, userID int64, state, password string) error {
	if state == passwordSetAtCreation {
		if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingPasswordKey: passwordResetting}); err != nil {
			return fmt.Errorf("mark the password reset of user %d: %w", userID, err)
		}
	}
	if _, err := s.users.UpdateUser(ctx, userID, wordpress.UserUpdate{Password: &password,
		Meta: map[string]wordpress.MetaValue{pendingPasswordKey: passwordReset}}); err != nil {
		return fmt.Errorf("reset password of user %d: %w", userID, err)
	}
	s.logger.InfoContext(ctx, "reset the password of a user whose generated password never reached HighLevel",
		slog.String("contact_id", c.ID), slog.Int64("user_id", userID))
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

// heldPassword is a password hlbridge set and has not returned yet; reset
// tells the recovery reset's password from the one set at creation.
type heldPassword struct {
	password string
	reset    bool
}

// passwordMemo holds the passwords hlbridge set but has not returned to
// HighLevel yet, by user id, in this process's memory only. An entry lives
// from the password's setting until it was returned or given up; a sync
// abandoned after its last attempt leaves one small entry behind. The zero
// value is ready to use.
type passwordMemo struct {
	mu sync.Mutex
	m  map[int64]heldPassword
}

func (p *passwordMemo) put(userID int64, h heldPassword) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[int64]heldPassword)
	}
	p.m[userID] = h
}

func (p *passwordMemo) get(userID int64) (heldPassword, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.m[userID]
	return h, ok
}

func (p *passwordMemo) drop(userID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, userID)
}
