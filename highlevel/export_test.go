package highlevel

import (
	"encoding/json"
	"time"
)

// SetNow replaces the client's clock, so tests can age the custom field
// catalogue without sleeping. Call it before the client is used.
func SetNow(c *Client, now func() time.Time) { c.now = now }

// ObjectMembers is objectMembers, for the fuzz test of ParseWorkflowWebhook.
var ObjectMembers = objectMembers

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
