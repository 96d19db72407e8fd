package highlevel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// MaxSearchPageLimit is the most contacts one POST /contacts/search answer
// holds.
const MaxSearchPageLimit = 500

// SearchFilter is one filter of a contact search, as HighLevel takes it:
// Operator is eq, not_eq, contains, not_contains, exists, not_exists or
// range. A tag filter is {Field: "tags", Operator: "eq", Value: "member"};
// a date range is {Field: "dateUpdated", Operator: "range", Value:
// map[string]string{"gte": "2026-01-02T00:00:00Z"}}.
type SearchFilter struct {
	Field    string `json:"field"`
	Operator string `json:"operator"`
	Value    any    `json:"value,omitempty"`
}

// ContactSearch is one page's request of a search over the location's
// contacts, sorted by dateAdded ascending (oldest first), so that contacts
// added during a long search come at its end rather than shifting pages.
type ContactSearch struct {
	// Filters all apply (AND).
	Filters []SearchFilter
	// PageLimit is the page size, 1 to MaxSearchPageLimit; 0 means the
	// maximum.
	PageLimit int
	// SearchAfter is the cursor: nil for the first page, then the previous
	// page's Next. HighLevel's "page" reaches only the first 10,000
	// contacts, so the client never pages with it.
	SearchAfter []any
}

// ContactPage is one page of a contact search.
type ContactPage struct {
	// Contacts are complete, as the API has them, but may lag the newest
	// updates by a few seconds: read a contact with Contact before acting on
	// a change that was just announced.
	Contacts []*Contact
	// After holds, for each contact, the cursor that continues the search
	// right after it (its searchAfter), so that a caller can resume from
	// the middle of a page.
	After [][]any
	// Total is how many contacts match the search, over all pages.
	Total int
	// Next is the cursor of the following page (the last contact's
	// searchAfter); nil when this page was the last.
	Next []any
}

type searchBody struct {
	LocationID  string         `json:"locationId"`
	PageLimit   int            `json:"pageLimit"`
	Filters     []SearchFilter `json:"filters,omitempty"`
	Sort        []searchSort   `json:"sort"`
	SearchAfter []any          `json:"searchAfter,omitempty"`
}

type searchSort struct {
	Field     string `json:"field"`
	Direction string `json:"direction"`
}

// SearchContacts returns one page of the location's contacts matching q
// (POST /contacts/search). Needs Config.LocationID. Like every call it
// waits for the client's request budget first.
func (c *Client) SearchContacts(ctx context.Context, q ContactSearch) (*ContactPage, error) {
	if c.locationID == "" {
		return nil, fmt.Errorf("highlevel: search contacts: %w", errNoLocation)
	}
	limit := q.PageLimit
	if limit == 0 {
		limit = MaxSearchPageLimit
	}
	if limit < 1 || limit > MaxSearchPageLimit {
		return nil, fmt.Errorf("highlevel: search contacts: page limit %d is not from 1 to %d", q.PageLimit, MaxSearchPageLimit)
	}
	body := searchBody{LocationID: c.locationID, PageLimit: limit, Filters: q.Filters,
		Sort: []searchSort{{Field: "dateAdded", Direction: "asc"}}, SearchAfter: q.SearchAfter}
	var out struct {
		Contacts []json.RawMessage `json:"contacts"`
		Total    int               `json:"total"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/contacts/search", body: body}, &out); err != nil {
		return nil, fmt.Errorf("highlevel: search contacts: %w", err)
	}
	page := &ContactPage{Total: out.Total, Contacts: make([]*Contact, 0, len(out.Contacts))}
	var last []any
	for _, raw := range out.Contacts {
		var ct Contact
		if err := json.Unmarshal(raw, &ct); err != nil {
			return nil, fmt.Errorf("highlevel: search contacts: decode a contact: %w", err)
		}
		var cursor struct {
			SearchAfter []any `json:"searchAfter"`
		}
		if err := json.Unmarshal(raw, &cursor); err != nil {
			return nil, fmt.Errorf("highlevel: search contacts: decode a contact's searchAfter: %w", err)
		}
		ct.Carried = nil // complete, as the API has it
		if len(cursor.SearchAfter) == 0 {
			return nil, errors.New("highlevel: search contacts: a contact has no searchAfter to page on")
		}
		page.Contacts = append(page.Contacts, &ct)
		page.After = append(page.After, cursor.SearchAfter)
		last = cursor.SearchAfter
	}
	if len(out.Contacts) == limit {
		page.Next = last
	}
	return page, nil
}
