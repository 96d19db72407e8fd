package bridge

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hlbridge/hlbridge/highlevel"
)

// DefaultFieldMap is the field map used when none is configured.
const DefaultFieldMap = "first_name=firstName,last_name=lastName"

// coreTargets are the WordPress user fields a mapping may write. The email
// always follows the contact's email and the login is set once, at creation.
var coreTargets = []string{"first_name", "last_name", "nickname", "display_name", "description", "url"}

// Mapping copies one HighLevel field into one WordPress field.
type Mapping struct {
	// Target is a core user field (first_name, last_name, nickname,
	// display_name, description, url) or a user meta key, as "meta:KEY".
	Target string
	// Source is a HighLevel standard field by its API name (firstName,
	// companyName, ...) or a custom field as "custom:ID_OR_KEY".
	Source string
}

// MetaKey returns the meta key of a "meta:KEY" target.
func (m Mapping) MetaKey() (string, bool) { return strings.CutPrefix(m.Target, "meta:") }

// CustomField returns the id or key of a "custom:ID_OR_KEY" source.
func (m Mapping) CustomField() (string, bool) { return strings.CutPrefix(m.Source, "custom:") }

// ParseFieldMap reads a field map such as
// "first_name=firstName,meta:company=companyName,meta:plan=custom:plan_key".
// Every target may appear once.
func ParseFieldMap(s string) ([]Mapping, error) {
	var out []Mapping
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		target, source, ok := strings.Cut(item, "=")
		target, source = strings.TrimSpace(target), strings.TrimSpace(source)
		if !ok || target == "" || source == "" {
			return nil, fmt.Errorf("%q: want TARGET=SOURCE, e.g. first_name=firstName", item)
		}
		m := Mapping{Target: target, Source: source}
		if key, isMeta := m.MetaKey(); isMeta {
			if key == "" {
				return nil, fmt.Errorf("%q: meta: needs a key, e.g. meta:company", item)
			}
		} else if !slices.Contains(coreTargets, target) {
			return nil, fmt.Errorf("%q: unknown WordPress field %q (want one of %s, or meta:KEY)", item, target, strings.Join(coreTargets, ", "))
		}
		if id, isCustom := m.CustomField(); isCustom {
			if id == "" {
				return nil, fmt.Errorf("%q: custom: needs a field id or key", item)
			}
		} else if !slices.Contains(highlevel.StandardFieldNames(), source) {
			return nil, fmt.Errorf("%q: unknown HighLevel field %q (want a standard field such as firstName or companyName, or custom:ID_OR_KEY)", item, source)
		}
		if seen[target] {
			return nil, fmt.Errorf("%q: %s is mapped twice", item, target)
		}
		seen[target] = true
		out = append(out, m)
	}
	return out, nil
}
