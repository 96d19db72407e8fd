package highlevel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// WorkflowWebhook is the body of a HighLevel workflow "Webhook" action: a
// POST of snake_case JSON with no signature, no event id and no timestamp,
// so it proves nothing by itself; authenticate it by other means (a secret
// in the configured URL's query string, which HighLevel passes through).
type WorkflowWebhook struct {
	// ContactID is "contact_id", also in Contact.ID.
	ContactID string
	// ContactIDNotString reports a "contact_id" that is neither a JSON
	// string nor null (a number, an object): ContactID then holds what the
	// lenient reading made of it, and a caller may rather refuse the body.
	ContactIDNotString bool
	// Contact holds the standard fields the payload carried, mapped to
	// their API names, and the custom fields it carried with Key set (see
	// ParseWorkflowWebhook). Fields the payload left out are empty.
	Contact Contact
	// CustomData is the action's "customData" object, the key/value pairs
	// the workflow author configured; values rendered as strings.
	CustomData map[string]string
	// LocationID is "location.id", also in Contact.LocationID.
	LocationID string
	// WorkflowID and WorkflowName come from "workflow".
	WorkflowID   string
	WorkflowName string
	// Extra holds the top-level keys this package does not know; HighLevel
	// puts contact custom fields there, keyed by their display name.
	Extra map[string]any
}

// workflowStandard maps the payload's snake_case keys to the API names of
// Contact's fields.
var workflowStandard = map[string]string{
	"contact_id":     "id",
	"first_name":     "firstName",
	"last_name":      "lastName",
	"full_name":      "name",
	"email":          "email",
	"phone":          "phone",
	"company_name":   "companyName",
	"address1":       "address1",
	"city":           "city",
	"state":          "state",
	"postal_code":    "postalCode",
	"country":        "country",
	"website":        "website",
	"timezone":       "timezone",
	"date_of_birth":  "dateOfBirth",
	"date_created":   "dateAdded",
	"contact_type":   "type",
	"contact_source": "source",
}

// workflowStandardKeys are workflowStandard's keys, sorted.
var workflowStandardKeys = sortedKeys(workflowStandard)

// workflowEnvelope lists top-level keys HighLevel sends that are neither
// contact fields nor custom fields; they are understood, or deliberately
// ignored, and never land in Extra.
var workflowEnvelope = map[string]bool{
	"tags":                  true,
	"location":              true,
	"workflow":              true,
	"triggerData":           true,
	"customData":            true,
	"full_address":          true, // derived from the address fields
	"contact":               true, // attribution details
	"attributionSource":     true,
	"lastAttributionSource": true,
	"user":                  true,
}

// ParseWorkflowWebhook parses a workflow "Webhook" action body.
//
// An empty (or all-whitespace) body gives an empty webhook and no error,
// so a call carrying everything in its query string still works. A body
// that is not a JSON object gives an error matching ErrInvalidPayload.
// Values of an unexpected type are read leniently (a number where text was
// expected becomes its decimal text) rather than failing the webhook.
//
// "tags" is one comma-separated string (an array is accepted too); tags are
// trimmed, empties dropped, case kept as sent (the API reports them
// lower-case, so compare case-insensitively). Entries of "customData" and
// unknown top-level keys (custom fields by display name; best effort, the
// exact form is unverified) also become Contact.CustomFields entries with
// Key set to the key as sent, customData first, then the rest sorted by
// key, so Contact.Custom finds them.
func ParseWorkflowWebhook(body []byte) (*WorkflowWebhook, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &WorkflowWebhook{}, nil
	}
	top, ok := objectMembers(body)
	if !ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidPayload, describeJSONError(body, err))
		}
		// json.Unmarshal took it: the body was the literal null.
		return nil, fmt.Errorf("%w: body is null, want a JSON object", ErrInvalidPayload)
	}

	w := &WorkflowWebhook{Contact: Contact{Carried: []string{}}}
	for _, key := range workflowStandardKeys {
		raw := top.get(key)
		if raw == nil {
			continue
		}
		name := workflowStandard[key]
		*w.Contact.standard(name) = rawString(raw)
		if name != "id" {
			w.Contact.Carried = append(w.Contact.Carried, name)
		}
	}
	if raw := top.get("tags"); raw != nil {
		w.Contact.Tags = rawTags(raw)
		w.Contact.Carried = append(w.Contact.Carried, "tags")
	}
	if loc := rawObject(top.get("location")); loc != nil {
		w.LocationID = rawString(loc.get("id"))
		w.Contact.LocationID = w.LocationID
	}
	if wf := rawObject(top.get("workflow")); wf != nil {
		w.WorkflowID = rawString(wf.get("id"))
		w.WorkflowName = rawString(wf.get("name"))
	}
	w.ContactID = w.Contact.ID
	if raw := top.get("contact_id"); raw != nil && raw[0] != '"' && string(raw) != "null" {
		w.ContactIDNotString = true
	}

	if cd := rawObject(top.get("customData")); len(cd) > 0 {
		w.CustomData = make(map[string]string, len(cd))
		for _, m := range cd {
			v := decodeAny(m.raw)
			w.CustomData[m.name] = valueString(v)
			w.Contact.CustomFields = append(w.Contact.CustomFields, CustomFieldValue{Key: m.name, Value: v})
		}
	}

	for _, m := range top {
		k := m.name
		if _, known := workflowStandard[k]; known || workflowEnvelope[k] {
			continue
		}
		v := decodeAny(m.raw)
		if w.Extra == nil {
			w.Extra = make(map[string]any)
		}
		w.Extra[k] = v
		w.Contact.CustomFields = append(w.Contact.CustomFields, CustomFieldValue{Key: k, Value: v})
	}
	return w, nil
}

// decodeAny decodes a JSON value already known to be valid, normalised the
// way custom field values are (arrays become []string).
func decodeAny(raw json.RawMessage) any {
	if s, ok := plainString(raw); ok {
		return s
	}
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return nil
	}
	return normaliseValue(x)
}

// rawObject reads the members of a JSON object sliced out of a valid
// body; anything else (absent included) gives nil.
func rawObject(raw json.RawMessage) members {
	if len(raw) == 0 {
		return nil
	}
	ms, _ := validObjectMembers(raw)
	return ms
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// describeJSONError says what is wrong with a body without echoing it (it
// may hold personal data): the decoder's complaint and, for syntax errors,
// the byte offset.
func describeJSONError(body []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d of %d: %v", syn.Offset, len(body), syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("body is a JSON %s, want an object", typ.Value)
	default:
		return fmt.Sprintf("malformed JSON: %v", err)
	}
}
