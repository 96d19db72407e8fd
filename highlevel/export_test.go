package highlevel

import "time"

// SetNow replaces the client's clock, so tests can age the custom field
// catalogue without sleeping. Call it before the client is used.
func SetNow(c *Client, now func() time.Time) { c.now = now }
