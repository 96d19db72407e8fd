package highlevel

import (
	"encoding/json"
	"time"
)

// SetNow replaces the client's clock, so tests can age the custom field
// catalogue without sleeping. Call it before the client is used.
func SetNow(c *Client, now func() time.Time) { c.now = now }

// ObjectMembers is objectMembers as the map json.Unmarshal would make, for
// the fuzz test of ParseWorkflowWebhook.
func ObjectMembers(data []byte) (map[string]json.RawMessage, bool) {
	ms, ok := objectMembers(data)
	if !ok {
		return nil, false
	}
	return membersMap(ms)
}

// membersMap is ms as a map; false when ms is not sorted by name with
// each name once, as objectMembers promises.
func membersMap(ms members) (map[string]json.RawMessage, bool) {
	m := make(map[string]json.RawMessage, len(ms))
	for i, x := range ms {
		if i > 0 && ms[i-1].name >= x.name {
			return nil, false
		}
		m[x.name] = x.raw
	}
	return m, true
}

// MarshalViaMap is how MarshalJSON wrote a payload's contact before it
// wrote one directly: through a map[string]any, which json.Marshal writes
// with its members sorted. Tests hold the direct writer to its output.
func MarshalViaMap(c Contact) ([]byte, error) {
	if c.Carried == nil {
		return c.MarshalJSON()
	}
	m := make(map[string]any, len(c.Carried)+3)
	m["id"] = c.ID
	if c.LocationID != "" {
		m["locationId"] = c.LocationID
	}
	for _, name := range c.Carried {
		switch name {
		case "dnd":
			m[name] = c.DND
		case "tags":
			if c.Tags == nil {
				m[name] = []string{}
			} else {
				m[name] = c.Tags
			}
		default:
			if p := c.standard(name); p != nil {
				m[name] = *p
			}
		}
	}
	if len(c.CustomFields) > 0 {
		m["customFields"] = c.CustomFields
	}
	return json.Marshal(m)
}
