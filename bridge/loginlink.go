package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// pendingLinkKey marks a new user whose set-password link has not reached
// HighLevel yet: set with the contact id at creation, cleared once the link
// was written (or given up). It never holds the link.
const pendingLinkKey = "hlbridge_pending_login_link"

// finishLinkReturn writes WordPress's set-password link for user userID
// (made by the companion with get_password_reset_key) to the contact's
// ReturnLoginLinkField, and clears the pending flag.
//
// The link is a secret and hlbridge keeps it nowhere: not in memory past
// this call, not in the store, not in an event or a log line. So a retry
// (after a HighLevel 429, a 5xx, a crash) makes a fresh link, which
// replaces the previous one in WordPress (it keeps one reset key per user):
// whatever link HighLevel ends up holding is the one that works. Once the
// flag is cleared, no link is ever made again for that user, so a user gets
// links only while they are new. A permanent refusal (no such field, a 4xx
// other than 429) clears the flag and refuses with HighLevel's reason,
// scrubbed of the link.
func (s *Syncer) finishLinkReturn(ctx context.Context, c *highlevel.Contact, userID int64) error {
	clear := func() error {
		if _, err := s.users.SetMeta(ctx, userID, map[string]wordpress.MetaValue{pendingLinkKey: nil}); err != nil {
			return fmt.Errorf("clear pending login link flag of user %d: %w", userID, err)
		}
		return nil
	}
	if s.contacts == nil || s.cfg.ReturnLoginLinkField == "" {
		s.logger.WarnContext(ctx, "returning login links is off: dropping a user's pending link",
			slog.String("contact_id", c.ID), slog.Int64("user_id", userID))
		if err := clear(); err != nil {
			return err
		}
		return errReturnOff
	}
	fieldID, err := s.contacts.CustomFieldID(ctx, s.cfg.ReturnLoginLinkField)
	if errors.Is(err, highlevel.ErrUnknownCustomField) {
		if err := clear(); err != nil {
			return err
		}
		return refuse("HighLevel has no custom field %q to return the login link of user %d to", s.cfg.ReturnLoginLinkField, userID)
	}
	if err != nil {
		return fmt.Errorf("resolve return login link field: %w", err)
	}
	link, err := s.users.PasswordResetLink(ctx, userID)
	if err != nil {
		return fmt.Errorf("make the set-password link of user %d: %w", userID, err)
	}
	err = s.contacts.UpdateCustomFields(ctx, c.ID, []highlevel.FieldWrite{{ID: fieldID, Value: link, Secret: true}})
	switch {
	case err == nil:
	case highlevel.Retryable(err):
		// The flag stays: the retry makes a fresh link.
		return &scrubbedError{msg: scrubLink(fmt.Sprintf("return login link to contact %s: %v", c.ID, err), link), err: err}
	default:
		if cerr := clear(); cerr != nil {
			return cerr
		}
		return refuse("%s", scrubLink(fmt.Sprintf("HighLevel refused the login link of user %d for contact %s: %v", userID, c.ID, err), link))
	}
	return clear()
}

// scrubLink removes link from msg in the forms an echo of the request may
// show it (as sent, JSON-escaped, URL-encoded), and its key on its own.
func scrubLink(msg, link string) string {
	forms := []string{link, strings.ReplaceAll(link, "&", `\u0026`), url.QueryEscape(link)}
	if u, err := url.Parse(link); err == nil {
		if key := u.Query().Get("key"); key != "" {
			forms = append(forms, key)
		}
	}
	for _, f := range forms {
		if f != "" {
			msg = strings.ReplaceAll(msg, f, "[login link]")
		}
	}
	return msg
}

// scrubbedError is an error whose message was scrubbed of a secret; it
// still unwraps to the original, so Retryable and RetryAfter see it.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
