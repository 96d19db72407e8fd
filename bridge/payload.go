package bridge

import (
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
)

// TakePayload puts the contact a webhook carried on req, for payload mode,
// with its secrets set apart. The value of the configured password field
// moves to req.Password, which the queue keeps only until the sync is done
// and never in an event; other fields whose names say they hold a secret
// (password, pwd, secret, token) are dropped, unless the field map or the
// username field uses them. So the contact that is stored, and kept as the
// contact's newest known state, holds no password.
func (s *Syncer) TakePayload(req *Request, c highlevel.Contact) {
	if s.cfg.PasswordField != "" {
		if v, ok := c.TakeCustom(s.cfg.PasswordField); ok {
			req.Password = strings.TrimSpace(v)
		}
	}
	kept := c.CustomFields[:0:0]
	for _, f := range c.CustomFields {
		if secretFieldName(f.Key) && !s.usesCustomField(f) {
			continue
		}
		kept = append(kept, f)
	}
	c.CustomFields = kept
	req.Contact = &c
}

// secretFieldName reports whether a payload field's name says it holds a
// secret, so that it is never stored.
func secretFieldName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"password", "passwd", "pwd", "secret", "token"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// usesCustomField reports whether the field map or the username field reads f.
func (s *Syncer) usesCustomField(f highlevel.CustomFieldValue) bool {
	probe := highlevel.Contact{CustomFields: []highlevel.CustomFieldValue{f}}
	if s.cfg.UsernameField != "" {
		if _, ok := probe.Custom(s.cfg.UsernameField); ok {
			return true
		}
	}
	for _, m := range s.cfg.FieldMap {
		if id, ok := m.CustomField(); ok {
			if _, ok := probe.Custom(id); ok {
				return true
			}
		}
	}
	return false
}
