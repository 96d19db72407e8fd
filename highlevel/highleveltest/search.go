package highleveltest

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

// maxPageLimit and maxPagedRecords are HighLevel's search limits: 500
// contacts a page, and "page" reaches only the first 10,000 records (past
// them, only searchAfter pages on).
const (
	maxPageLimit    = 500
	maxPagedRecords = 10_000
)

// Searches returns the bodies of the POST /contacts/search requests the
// fake accepted for processing (authenticated, not rate-limited), in order.
func (s *Server) Searches() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.searches)
}

// searchKey orders search results: dateAdded ascending, then id, which is
// also the searchAfter cursor [dateAdded in ms, id] every result carries.
type searchKey struct {
	ms int64
	id string
}

func keyOf(c *highlevel.Contact) searchKey {
	return searchKey{ms: parseDate(c.DateAdded).UnixMilli(), id: c.ID}
}

func (a searchKey) compare(b searchKey) int {
	return cmp.Or(cmp.Compare(a.ms, b.ms), strings.Compare(a.id, b.id))
}

// handleSearch answers POST /contacts/search {"locationId","pageLimit",
// "filters":[{"field","operator","value"}],"sort":[{"field":"dateAdded",
// "direction":"asc"}],"searchAfter":[ms,id] | "page":N} with
// {"contacts":[{...,"searchAfter":[ms,id]}],"total":N}. Filters: eq,
// not_eq, contains, not_contains, exists, not_exists on tags and the
// standard string fields, and range ({"gt"|"gte"|"lt"|"lte": date}) on
// dateAdded and dateUpdated. Sort: dateAdded only, either direction.
func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.searches = append(s.searches, body)
	s.mu.Unlock()

	loc, _ := body["locationId"].(string)
	if loc == "" {
		writeValidation(w, []string{"locationId should not be empty", "locationId must be a string"})
		return
	}
	if loc != s.LocationID {
		writeError(w, http.StatusForbidden, msgNoLocation)
		return
	}
	limit := 20 // HighLevel's default page size
	if v, ok := body["pageLimit"]; ok {
		f, isNum := v.(float64)
		if !isNum || f != float64(int(f)) || f < 1 {
			writeValidation(w, []string{"pageLimit must be a positive integer"})
			return
		}
		if f > maxPageLimit {
			writeValidation(w, []string{fmt.Sprintf("pageLimit must not be greater than %d", maxPageLimit)})
			return
		}
		limit = int(f)
	}
	desc := false
	if list, ok := body["sort"].([]any); ok {
		for _, e := range list {
			m, _ := e.(map[string]any)
			if m["field"] != "dateAdded" {
				writeValidation(w, []string{fmt.Sprintf("sort field %v is not modelled by the fake (only dateAdded)", m["field"])})
				return
			}
			desc = m["direction"] == "desc"
		}
	}
	var after *searchKey
	if v, ok := body["searchAfter"]; ok {
		list, _ := v.([]any)
		ms, okMs := listAt[float64](list, 0)
		id, okID := listAt[string](list, 1)
		if len(list) != 2 || !okMs || !okID {
			writeValidation(w, []string{"searchAfter must be the searchAfter array of a previous result"})
			return
		}
		after = &searchKey{ms: int64(ms), id: id}
	}
	skip := 0
	if v, ok := body["page"]; ok {
		if after != nil {
			writeValidation(w, []string{"page and searchAfter cannot be used together"})
			return
		}
		f, _ := v.(float64)
		if f < 1 || f != float64(int(f)) {
			writeValidation(w, []string{"page must be a positive integer"})
			return
		}
		skip = (int(f) - 1) * limit
		if skip+limit > maxPagedRecords {
			writeValidation(w, []string{fmt.Sprintf("page can only reach the first %d records; use searchAfter", maxPagedRecords)})
			return
		}
	}
	var filters []func(*highlevel.Contact) bool
	if v, ok := body["filters"]; ok {
		list, isList := v.([]any)
		if !isList {
			writeValidation(w, []string{"filters must be an array"})
			return
		}
		for _, e := range list {
			f, err := searchFilter(e)
			if err != nil {
				writeValidation(w, []string{err.Error()})
				return
			}
			filters = append(filters, f)
		}
	}

	s.mu.Lock()
	var matched []*highlevel.Contact
	for _, id := range s.order {
		c := s.contacts[id]
		if !slices.ContainsFunc(filters, func(f func(*highlevel.Contact) bool) bool { return !f(c) }) {
			matched = append(matched, c)
		}
	}
	slices.SortStableFunc(matched, func(a, b *highlevel.Contact) int {
		if desc {
			return keyOf(b).compare(keyOf(a))
		}
		return keyOf(a).compare(keyOf(b))
	})
	total := len(matched)
	if after != nil {
		i := slices.IndexFunc(matched, func(c *highlevel.Contact) bool {
			if desc {
				return keyOf(c).compare(*after) < 0
			}
			return keyOf(c).compare(*after) > 0
		})
		if i < 0 {
			i = len(matched)
		}
		matched = matched[i:]
	}
	matched = matched[min(skip, len(matched)):]
	matched = matched[:min(limit, len(matched))]
	type result struct {
		wireContact
		SearchAfter []any `json:"searchAfter"`
	}
	out := make([]result, 0, len(matched))
	for _, c := range matched {
		k := keyOf(c)
		out = append(out, result{wireContact: toWire(*c), SearchAfter: []any{k.ms, k.id}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"contacts": out, "total": total})
}

// searchFilter turns one {"field","operator","value"} into a predicate.
func searchFilter(e any) (func(*highlevel.Contact) bool, error) {
	m, ok := e.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("each filter must be an object")
	}
	field, _ := m["field"].(string)
	op, _ := m["operator"].(string)
	value := m["value"]
	if field == "dateAdded" || field == "dateUpdated" {
		if op != "range" {
			return nil, fmt.Errorf("operator %q is not modelled by the fake for %s (only range)", op, field)
		}
		bounds, ok := value.(map[string]any)
		if !ok || len(bounds) == 0 {
			return nil, fmt.Errorf("a range filter's value must be an object of gt, gte, lt, lte")
		}
		type bound struct {
			op string
			at time.Time
		}
		var bs []bound
		for k, v := range bounds {
			var at time.Time
			switch v := v.(type) {
			case string:
				at = parseDate(v)
			case float64:
				at = time.UnixMilli(int64(v))
			}
			if at.IsZero() || !slices.Contains([]string{"gt", "gte", "lt", "lte"}, k) {
				return nil, fmt.Errorf("range %s: %v is not a date bound", k, v)
			}
			bs = append(bs, bound{k, at})
		}
		return func(c *highlevel.Contact) bool {
			d := c.DateAdded
			if field == "dateUpdated" {
				d = c.DateUpdated
			}
			t := parseDate(d)
			for _, b := range bs {
				c := t.Compare(b.at)
				if b.op == "gt" && c <= 0 || b.op == "gte" && c < 0 || b.op == "lt" && c >= 0 || b.op == "lte" && c > 0 {
					return false
				}
			}
			return true
		}, nil
	}
	values := func(c *highlevel.Contact) []string {
		if field == "tags" {
			return c.Tags
		}
		if v, _ := c.Standard(field); v != "" {
			return []string{v}
		}
		return nil
	}
	if field != "tags" && !slices.Contains(highlevel.StandardFieldNames(), field) {
		return nil, fmt.Errorf("filter field %q is not modelled by the fake", field)
	}
	want := strings.ToLower(strings.TrimSpace(fmt.Sprint(value)))
	switch op {
	case "exists":
		return func(c *highlevel.Contact) bool { return len(values(c)) > 0 }, nil
	case "not_exists":
		return func(c *highlevel.Contact) bool { return len(values(c)) == 0 }, nil
	case "eq", "not_eq", "contains", "not_contains":
		if _, ok := value.(string); !ok {
			return nil, fmt.Errorf("filter %s %s needs a string value", field, op)
		}
		match := func(c *highlevel.Contact) bool {
			return slices.ContainsFunc(values(c), func(v string) bool {
				v = strings.ToLower(v)
				if strings.HasSuffix(op, "contains") {
					return strings.Contains(v, want)
				}
				return v == want
			})
		}
		if strings.HasPrefix(op, "not_") {
			return func(c *highlevel.Contact) bool { return !match(c) }, nil
		}
		return match, nil
	}
	return nil, fmt.Errorf("operator %q is not one of eq, not_eq, contains, not_contains, exists, not_exists, range", op)
}

// parseDate reads HighLevel's timestamps; the zero time when it cannot.
func parseDate(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func listAt[T any](list []any, i int) (T, bool) {
	var zero T
	if i >= len(list) {
		return zero, false
	}
	v, ok := list[i].(T)
	return v, ok
}
