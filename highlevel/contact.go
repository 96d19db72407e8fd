package highlevel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Contact is a HighLevel contact, as API v2 returns it (GET /contacts/{id})
// or as a workflow webhook describes it. Fields HighLevel left out are
// empty. Decoding is lenient: a number where a string was expected becomes
// its decimal text, tags may be an array or one comma-separated string, and
// unknown keys are ignored, so one surprising field never loses a contact.
type Contact struct {
	ID          string `json:"id"`
	LocationID  string `json:"locationId,omitempty"`
	FirstName   string `json:"firstName,omitempty"`
	LastName    string `json:"lastName,omitempty"`
	Name        string `json:"name,omitempty"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
	CompanyName string `json:"companyName,omitempty"`
	Address1    string `json:"address1,omitempty"`
	City        string `json:"city,omitempty"`
	State       string `json:"state,omitempty"`
	PostalCode  string `json:"postalCode,omitempty"`
	Country     string `json:"country,omitempty"`
	Website     string `json:"website,omitempty"`
	Timezone    string `json:"timezone,omitempty"`
	DateOfBirth string `json:"dateOfBirth,omitempty"`
	Source      string `json:"source,omitempty"`
	Type        string `json:"type,omitempty"`
	// DND is HighLevel's global "do not disturb" flag.
	DND bool `json:"dnd"`
	// Tags are tag names. The API returns them lower-case; webhook payloads
	// are kept as sent, only trimmed.
	Tags []string `json:"tags"`
	// CustomFields carries ids (API) or keys (webhook payloads); see Custom.
	CustomFields []CustomFieldValue `json:"customFields"`
	DateAdded    string             `json:"dateAdded,omitempty"`
	DateUpdated  string             `json:"dateUpdated,omitempty"`

	// Carried lists the API names of the standard fields, "dnd" and "tags"
	// that a webhook payload carried, also when empty, so that a field it
	// left out can be told from one it cleared. nil means the contact is
	// complete, as one read from the API is. UnmarshalJSON and
	// ParseWorkflowWebhook set it; MarshalJSON writes exactly these fields
	// (and the custom fields), so the distinction survives a round trip.
	Carried []string `json:"-"`
}

// Carries reports whether the contact holds a value for the standard field
// name (an API name, "dnd" or "tags"): always for a complete contact; for a
// payload's, when the payload carried it. "name" is carried with any of
// name, firstName and lastName, since Standard derives it from them.
func (c *Contact) Carries(name string) bool {
	if c.Carried == nil || slices.Contains(c.Carried, name) {
		return true
	}
	return name == "name" && (slices.Contains(c.Carried, "firstName") || slices.Contains(c.Carried, "lastName"))
}

// Overlay updates c with what later carried: its carried standard fields,
// dnd and tags replace c's, its custom fields replace c's entries with the
// same id or key and are added otherwise. What later left out keeps c's
// value. A complete later (Carried nil) replaces c whole. It is how the
// newest of several payloads for one contact wins field by field.
func (c *Contact) Overlay(later *Contact) {
	if later.Carried == nil {
		*c = *later
		c.CustomFields = slices.Clone(later.CustomFields)
		c.Tags = slices.Clone(later.Tags)
		return
	}
	c.CustomFields = slices.Clone(c.CustomFields) // c may share them with another copy
	if c.Carried != nil {
		c.Carried = slices.Clone(c.Carried)
	}
	if later.ID != "" {
		c.ID = later.ID
	}
	if later.LocationID != "" {
		c.LocationID = later.LocationID
	}
	for _, name := range later.Carried {
		switch name {
		case "dnd":
			c.DND = later.DND
		case "tags":
			c.Tags = slices.Clone(later.Tags)
		default:
			if dst, src := c.standard(name), later.standard(name); dst != nil && src != nil {
				*dst = *src
			}
		}
		if c.Carried != nil && !slices.Contains(c.Carried, name) {
			c.Carried = append(c.Carried, name)
		}
	}
	for _, f := range later.CustomFields {
		i := slices.IndexFunc(c.CustomFields, func(e CustomFieldValue) bool {
			return (f.ID != "" && e.ID == f.ID) || (f.ID == "" && f.Key != "" && e.Key == f.Key)
		})
		if i >= 0 {
			c.CustomFields[i] = f
		} else {
			c.CustomFields = append(c.CustomFields, f)
		}
	}
}

// standard returns the string field with API name name, nil for none.
func (c *Contact) standard(name string) *string {
	for _, f := range standardFields {
		if f.name == name {
			return f.field(c)
		}
	}
	return nil
}

// MarshalJSON writes the contact in HighLevel's camelCase shape. A complete
// contact omits its empty fields; a payload's writes exactly the fields it
// carried, empty ones included (see Carried), with its members sorted by
// name as encoding/json writes a map's. A payload's contact is encoded
// once per accepted webhook, so it is written directly: through a
// map[string]any it was a twentieth of the intake's CPU.
func (c Contact) MarshalJSON() ([]byte, error) {
	type plain Contact
	if c.Carried == nil {
		return json.Marshal(plain(c))
	}
	names := make([]string, 0, len(c.Carried)+3)
	names = append(names, "id")
	if c.LocationID != "" {
		names = append(names, "locationId")
	}
	if len(c.CustomFields) > 0 {
		names = append(names, "customFields")
	}
	for _, name := range c.Carried {
		if name == "dnd" || name == "tags" || c.standard(name) != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		switch name {
		case "dnd":
			b = strconv.AppendBool(b, c.DND)
		case "tags":
			b = append(b, '[')
			for j, tag := range c.Tags {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, tag)
			}
			b = append(b, ']')
		case "customFields":
			fields, err := json.Marshal(c.CustomFields)
			if err != nil {
				return nil, err
			}
			b = append(b, fields...)
		default:
			b = appendJSONString(b, *c.standard(name))
		}
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as json.Marshal writes a string: text that
// needs no escaping as it is, anything else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// CustomFieldValue is one custom field of a contact. The API identifies it
// by ID only; Key is only known from webhook payloads (the key or display
// name the payload used). Value is a string, a float64, a []string, or, for
// exotic field types such as file uploads, whatever JSON HighLevel sent.
type CustomFieldValue struct {
	ID    string `json:"id,omitempty"`
	Key   string `json:"key,omitempty"`
	Value any    `json:"value"`
}

// standardFields lists the string-valued standard fields by their API v2
// JSON name; "dnd" and "tags" are handled beside them.
var standardFields = []struct {
	name  string
	field func(*Contact) *string
}{
	{"id", func(c *Contact) *string { return &c.ID }},
	{"locationId", func(c *Contact) *string { return &c.LocationID }},
	{"firstName", func(c *Contact) *string { return &c.FirstName }},
	{"lastName", func(c *Contact) *string { return &c.LastName }},
	{"name", func(c *Contact) *string { return &c.Name }},
	{"email", func(c *Contact) *string { return &c.Email }},
	{"phone", func(c *Contact) *string { return &c.Phone }},
	{"companyName", func(c *Contact) *string { return &c.CompanyName }},
	{"address1", func(c *Contact) *string { return &c.Address1 }},
	{"city", func(c *Contact) *string { return &c.City }},
	{"state", func(c *Contact) *string { return &c.State }},
	{"postalCode", func(c *Contact) *string { return &c.PostalCode }},
	{"country", func(c *Contact) *string { return &c.Country }},
	{"website", func(c *Contact) *string { return &c.Website }},
	{"timezone", func(c *Contact) *string { return &c.Timezone }},
	{"dateOfBirth", func(c *Contact) *string { return &c.DateOfBirth }},
	{"source", func(c *Contact) *string { return &c.Source }},
	{"type", func(c *Contact) *string { return &c.Type }},
	{"dateAdded", func(c *Contact) *string { return &c.DateAdded }},
	{"dateUpdated", func(c *Contact) *string { return &c.DateUpdated }},
}

// StandardFieldNames returns the names Contact.Standard accepts (API v2 JSON
// names such as "firstName" and "postalCode"), sorted, for validating and
// documenting field mappings.
func StandardFieldNames() []string {
	names := make([]string, 0, len(standardFields)+2)
	for _, f := range standardFields {
		names = append(names, f.name)
	}
	names = append(names, "dnd", "tags")
	slices.Sort(names)
	return names
}

// Standard returns a standard field by its API v2 JSON name ("firstName",
// "companyName", "postalCode", ...; see StandardFieldNames). ok is false only
// for a name that is not a standard field; an empty field gives "", true.
// "tags" joins the tags with ", ", "dnd" is "true" or "false", and "name"
// falls back to "first last" when HighLevel sent no full name.
func (c *Contact) Standard(name string) (value string, ok bool) {
	switch name {
	case "dnd":
		return strconv.FormatBool(c.DND), true
	case "tags":
		return strings.Join(c.Tags, ", "), true
	case "name":
		if c.Name == "" {
			return strings.TrimSpace(c.FirstName + " " + c.LastName), true
		}
		return c.Name, true
	}
	for _, f := range standardFields {
		if f.name == name {
			return *f.field(c), true
		}
	}
	return "", false
}

// Custom returns a custom field's value as a string: arrays joined with
// ", ", numbers in plain decimal without a trailing ".0", booleans as
// "true"/"false", other JSON as compact JSON. It matches idOrKey against
// field ids first, then keys exactly, then keys loosely, so that in payload
// mode "my_field", "contact.my_field" and a display name "My Field" find the
// same entry. API contacts carry ids only: resolve a key with
// Client.CustomFieldID first. ok is false when no field matches.
func (c *Contact) Custom(idOrKey string) (value string, ok bool) {
	if i := c.customIndex(idOrKey); i >= 0 {
		return valueString(c.CustomFields[i].Value), true
	}
	return "", false
}

// TakeCustom removes the custom field Custom would find and returns its
// value; ok is false, and nothing changes, when no field matches. It keeps
// a secret (a password field) out of a contact that is stored.
func (c *Contact) TakeCustom(idOrKey string) (value string, ok bool) {
	i := c.customIndex(idOrKey)
	if i < 0 {
		return "", false
	}
	value = valueString(c.CustomFields[i].Value)
	c.CustomFields = slices.Delete(slices.Clone(c.CustomFields), i, i+1)
	return value, true
}

// customIndex is the index of the custom field Custom matches, or -1.
func (c *Contact) customIndex(idOrKey string) int {
	want := strings.TrimSpace(idOrKey)
	if want == "" {
		return -1
	}
	if i := slices.IndexFunc(c.CustomFields, func(f CustomFieldValue) bool { return f.ID != "" && f.ID == want }); i >= 0 {
		return i
	}
	if i := slices.IndexFunc(c.CustomFields, func(f CustomFieldValue) bool { return f.Key != "" && f.Key == want }); i >= 0 {
		return i
	}
	loose := looseKey(want)
	if loose == "" {
		return -1
	}
	return slices.IndexFunc(c.CustomFields, func(f CustomFieldValue) bool { return f.Key != "" && looseKey(f.Key) == loose })
}

// looseKey folds a field key or display name to lower-case snake case
// without HighLevel's "contact." prefix, the form HighLevel derives field
// keys in: "contact.my_field", "My Field" and "my-field" all give "my_field".
func looseKey(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "contact.")
	var b strings.Builder
	pendingSep := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if pendingSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingSep = false
			b.WriteRune(r)
			continue
		}
		pendingSep = true
	}
	return b.String()
}

// UnmarshalJSON decodes HighLevel's camelCase contact leniently (see
// Contact).
func (c *Contact) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("highlevel: contact is not a JSON object: %w", err)
	}
	*c = Contact{Carried: []string{}}
	for _, f := range standardFields {
		if raw, ok := m[f.name]; ok {
			*f.field(c) = rawString(raw)
			if f.name != "id" && f.name != "locationId" {
				c.Carried = append(c.Carried, f.name)
			}
		}
	}
	if raw, ok := m["dnd"]; ok {
		c.DND = rawBool(raw)
		c.Carried = append(c.Carried, "dnd")
	}
	if raw, ok := m["tags"]; ok {
		c.Tags = rawTags(raw)
		c.Carried = append(c.Carried, "tags")
	}
	if raw, ok := m["customFields"]; ok {
		var entries []json.RawMessage
		if json.Unmarshal(raw, &entries) == nil {
			for _, e := range entries {
				var v CustomFieldValue
				if v.UnmarshalJSON(e) == nil && (v.ID != "" || v.Key != "") {
					c.CustomFields = append(c.CustomFields, v)
				}
			}
		}
	}
	return nil
}

// UnmarshalJSON accepts the read shape {"id","value"} and, leniently, the
// write shape {"id"|"key","field_value"}.
func (v *CustomFieldValue) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*v = CustomFieldValue{ID: rawString(m["id"]), Key: rawString(m["key"])}
	if v.Key == "" {
		v.Key = rawString(m["fieldKey"])
	}
	for _, name := range []string{"value", "field_value", "fieldValue"} {
		if raw, ok := m[name]; ok {
			var x any
			if json.Unmarshal(raw, &x) == nil {
				v.Value = normaliseValue(x)
			}
			break
		}
	}
	return nil
}

// plainString reads a JSON string that has no escapes, the common case,
// without the decoder: its bytes between the quotes are the string. It
// reports false for anything else (an escape, a control character, invalid
// UTF-8, which the decoder would replace, or not a string at all), which
// the decoder then reads.
func plainString(raw json.RawMessage) (string, bool) {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return "", false
	}
	inner := raw[1 : n-1]
	for _, b := range inner {
		if b < 0x20 || b == '"' || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// rawString reads a JSON scalar as a string; null, objects and arrays of
// non-scalars give "". Arrays of scalars are joined with ", ".
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if s, ok := plainString(raw); ok {
		return strings.TrimSpace(s)
	}
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return ""
	}
	switch x.(type) {
	case map[string]any:
		return ""
	}
	return strings.TrimSpace(valueString(normaliseValue(x)))
}

func rawBool(raw json.RawMessage) bool {
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return false
	}
	switch v := x.(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(strings.TrimSpace(v))
		return b
	case float64:
		return v != 0
	}
	return false
}

// rawTags reads tags sent as an array or as one comma-separated string;
// each tag is trimmed and empty ones dropped. Case is kept as sent.
func rawTags(raw json.RawMessage) []string {
	if s, ok := plainString(raw); ok {
		return splitTags(s)
	}
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return nil
	}
	return splitTags(x)
}

func splitTags(x any) []string {
	var parts []string
	switch v := x.(type) {
	case string:
		parts = strings.Split(v, ",")
	case []any:
		for _, e := range v {
			switch e.(type) {
			case map[string]any, []any:
				continue
			}
			parts = append(parts, valueString(e))
		}
	default:
		return nil
	}
	tags := make([]string, 0, len(parts))
	for _, p := range parts {
		if t := strings.TrimSpace(p); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// normaliseValue maps a decoded JSON value to the types CustomFieldValue
// documents: arrays become []string; scalars and objects stay as decoded.
func normaliseValue(x any) any {
	if list, ok := x.([]any); ok {
		out := make([]string, 0, len(list))
		for _, e := range list {
			out = append(out, valueString(e))
		}
		return out
	}
	return x
}

// valueString renders a custom field value for WordPress: arrays joined
// with ", ", numbers without a trailing ".0", nil as "".
func valueString(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case []string:
		return strings.Join(v, ", ")
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, valueString(e))
		}
		return strings.Join(parts, ", ")
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// Contact fetches a contact by id (GET /contacts/{id}). An unknown id gives
// an error matching ErrNotFound.
func (c *Client) Contact(ctx context.Context, id string) (*Contact, error) {
	if err := validID("contact id", id); err != nil {
		return nil, err
	}
	var out struct {
		Contact *Contact `json:"contact"`
	}
	err := c.do(ctx, call{
		method:     http.MethodGet,
		path:       "/contacts/{contactId}",
		pathParams: map[string]string{"contactId": id},
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("highlevel: get contact %s: %w", id, err)
	}
	if out.Contact == nil {
		return nil, fmt.Errorf("highlevel: get contact %s: answer has no contact: %w", id, ErrNotFound)
	}
	out.Contact.Carried = nil // the API's contact is complete: what it leaves out is empty
	return out.Contact, nil
}

// ContactByEmail finds the location's contact with this email (GET
// /contacts/search/duplicate), the way HighLevel itself detects duplicates.
// No such contact gives an error matching ErrNotFound. Needs
// Config.LocationID. The email never appears in errors or logs.
func (c *Client) ContactByEmail(ctx context.Context, email string) (*Contact, error) {
	if c.locationID == "" {
		return nil, fmt.Errorf("highlevel: find contact by email: %w", errNoLocation)
	}
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, errors.New("highlevel: find contact by email: empty email")
	}
	var out struct {
		Contact *Contact `json:"contact"`
	}
	err := c.do(ctx, call{
		method: http.MethodGet,
		path:   "/contacts/search/duplicate",
		query:  map[string]string{"locationId": c.locationID, "email": email},
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("highlevel: find contact by email: %w", err)
	}
	if out.Contact == nil || out.Contact.ID == "" {
		return nil, fmt.Errorf("highlevel: find contact by email: %w", ErrNotFound)
	}
	out.Contact.Carried = nil
	return out.Contact, nil
}

// AddTags adds tags to a contact (POST /contacts/{id}/tags), keeping the
// ones it has. Empty tags are dropped; no tags means no request.
func (c *Client) AddTags(ctx context.Context, contactID string, tags []string) error {
	return c.changeTags(ctx, http.MethodPost, "add tags to", contactID, tags)
}

// RemoveTags removes tags from a contact (DELETE /contacts/{id}/tags).
// Empty tags are dropped; no tags means no request.
func (c *Client) RemoveTags(ctx context.Context, contactID string, tags []string) error {
	return c.changeTags(ctx, http.MethodDelete, "remove tags from", contactID, tags)
}

func (c *Client) changeTags(ctx context.Context, method, verb, contactID string, tags []string) error {
	if err := validID("contact id", contactID); err != nil {
		return err
	}
	clean := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			clean = append(clean, t)
		}
	}
	if len(clean) == 0 {
		return nil
	}
	err := c.do(ctx, call{
		method:     method,
		path:       "/contacts/{contactId}/tags",
		pathParams: map[string]string{"contactId": contactID},
		body:       map[string]any{"tags": clean},
	}, nil)
	if err != nil {
		return fmt.Errorf("highlevel: %s contact %s: %w", verb, contactID, err)
	}
	return nil
}

// errNoLocation is returned by calls that need Config.LocationID.
var errNoLocation = errors.New("Config.LocationID is required for this call")
