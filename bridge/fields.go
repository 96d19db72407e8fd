package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// fieldValues are the WordPress values the field map gives for a contact.
type fieldValues struct {
	core map[string]string              // core user field -> value
	meta map[string]wordpress.MetaValue // meta key -> value
}

// fieldValues applies the field map to c. A field the payload did not
// carry (payload mode) is left out rather than cleared; one it carried
// empty clears the WordPress value.
func (s *Syncer) fieldValues(ctx context.Context, c *highlevel.Contact) (fieldValues, error) {
	fv := fieldValues{core: map[string]string{}, meta: map[string]wordpress.MetaValue{}}
	for _, m := range s.cfg.FieldMap {
		var v string
		if id, ok := m.CustomField(); ok {
			val, present, err := s.custom(ctx, c, id)
			if err != nil {
				return fv, err
			}
			if !present {
				continue
			}
			v = val
		} else {
			if !c.Carries(m.Source) {
				continue
			}
			v, _ = c.Standard(m.Source)
		}
		if key, ok := m.MetaKey(); ok {
			fv.meta[key] = v
		} else {
			fv.core[m.Target] = v
		}
	}
	return fv, nil
}

// customValue returns a custom field's value, "" when it is not set or
// field is "" (not configured).
func (s *Syncer) customValue(ctx context.Context, c *highlevel.Contact, field string) (string, error) {
	if field == "" {
		return "", nil
	}
	v, _, err := s.custom(ctx, c, field)
	return strings.TrimSpace(v), err
}

// custom looks a custom field up by id or key. With the API, a key is
// resolved to its id through the location's catalogue, and a field the
// contact lacks is present and empty; in payload mode only what the body
// carried is present.
func (s *Syncer) custom(ctx context.Context, c *highlevel.Contact, idOrKey string) (value string, present bool, err error) {
	if s.contacts == nil {
		v, ok := c.Custom(idOrKey)
		return v, ok, nil
	}
	id, err := s.contacts.CustomFieldID(ctx, idOrKey)
	if errors.Is(err, highlevel.ErrUnknownCustomField) {
		return "", false, refuse("HighLevel has no custom field %q", idOrKey)
	}
	if err != nil {
		return "", false, fmt.Errorf("resolve custom field %q: %w", idOrKey, err)
	}
	v, _ := c.Custom(id)
	return v, true, nil
}

// tagList is the contact's tags as stored in the tags meta: never nil, so
// that a contact without tags clears the list rather than the key.
func tagList(c *highlevel.Contact) []string {
	tags := make([]string, 0, len(c.Tags))
	for _, t := range c.Tags {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

// metaEqual compares a stored meta value with a wanted one.
func metaEqual(have, want wordpress.MetaValue) bool {
	switch w := want.(type) {
	case string:
		h, ok := have.(string)
		return ok && h == w
	case []string:
		h, ok := have.([]string)
		return ok && slices.Equal(h, w)
	case nil:
		return have == nil
	}
	return false
}

// changedFields names the core fields that differ between two versions of a user.
func changedFields(before, after *wordpress.User) []string {
	var out []string
	add := func(name string, a, b string) {
		if a != b {
			out = append(out, name)
		}
	}
	add("email", before.Email, after.Email)
	add("first_name", before.FirstName, after.FirstName)
	add("last_name", before.LastName, after.LastName)
	add("nickname", before.Nickname, after.Nickname)
	add("display_name", before.Name, after.Name)
	add("description", before.Description, after.Description)
	add("url", before.URL, after.URL)
	if !slices.Equal(before.Roles, after.Roles) {
		out = append(out, "roles")
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func equalFoldTrim(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
