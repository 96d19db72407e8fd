package highlevel

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// CustomField is an entry of a location's custom field catalogue (GET
// /locations/{locationId}/customFields?model=contact). FieldKey is
// HighLevel's key with its model prefix, e.g. "contact.my_field"; DataType
// is e.g. "TEXT", "NUMERICAL", "MULTIPLE_OPTIONS".
type CustomField struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	FieldKey string `json:"fieldKey"`
	DataType string `json:"dataType"`
}

// FieldWrite is one custom field value to write to a contact. Set ID, or Key
// ("my_field" or "contact.my_field"); ID wins when both are set. Value is
// sent as is: a string, a number, or a []string for multi-option fields.
// Secret marks a string Value that must never appear in an error (a
// password): it is scrubbed from HighLevel's error messages, which can echo
// what a request wrote.
type FieldWrite struct {
	ID     string
	Key    string
	Value  any
	Secret bool
}

// missRefreshFloor bounds how often a lookup miss may refetch the
// catalogue: a field created in HighLevel a moment ago resolves within this
// long, while a misconfigured key costs at most one catalogue request per
// floor instead of one per webhook (the burst limit is 100 per 10 s).
const missRefreshFloor = 30 * time.Second

// failedRefreshBackoff is how long a stale catalogue keeps being used after
// a refresh failed, before the next attempt.
const failedRefreshBackoff = 30 * time.Second

// catalogue is one immutable fetch of the custom field catalogue.
type catalogue struct {
	fields    []CustomField
	byID      map[string]string // id -> id
	byKey     map[string]string // catalogueKey(fieldKey) -> id
	fetchedAt time.Time
}

func newCatalogue(fields []CustomField, at time.Time) *catalogue {
	cat := &catalogue{
		fields:    fields,
		byID:      make(map[string]string, len(fields)),
		byKey:     make(map[string]string, len(fields)),
		fetchedAt: at,
	}
	for _, f := range fields {
		if f.ID == "" {
			continue
		}
		cat.byID[f.ID] = f.ID
		if k := catalogueKey(f.FieldKey); k != "" {
			if _, dup := cat.byKey[k]; !dup {
				cat.byKey[k] = f.ID
			}
		}
	}
	return cat
}

// resolve maps an id, a key or a "contact."-prefixed key to an id.
func (cat *catalogue) resolve(idOrKey string) (string, bool) {
	if id, ok := cat.byID[idOrKey]; ok {
		return id, true
	}
	id, ok := cat.byKey[catalogueKey(idOrKey)]
	return id, ok
}

// catalogueKey folds a field key for lookup: case-insensitive, with or
// without HighLevel's "contact." prefix.
func catalogueKey(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	return strings.TrimPrefix(k, "contact.")
}

// CustomFields returns the location's contact custom field catalogue,
// cached for Config.CatalogueTTL. When a refresh fails and an older
// catalogue is cached, the older one is returned (and a warning logged)
// rather than failing the caller's work. Needs Config.LocationID.
func (c *Client) CustomFields(ctx context.Context) ([]CustomField, error) {
	cat, err := c.catalogue(ctx)
	if err != nil {
		return nil, fmt.Errorf("highlevel: %w", err)
	}
	out := make([]CustomField, len(cat.fields))
	copy(out, cat.fields)
	return out, nil
}

// CustomFieldID resolves a custom field id or key ("my_field" or
// "contact.my_field", case-insensitive) to the field's id; an input that is
// already a known id returns itself. It reads the cached catalogue; on a
// miss it refetches the catalogue once, unless the cached one is younger
// than 30 seconds (or CatalogueTTL, if shorter), so new fields are found
// quickly and an unknown key cannot flood HighLevel with catalogue requests.
// Not found even then: an error matching ErrUnknownCustomField. A failed
// fetch returns that failure instead (it is retryable; an unknown field is
// not).
func (c *Client) CustomFieldID(ctx context.Context, idOrKey string) (string, error) {
	in := strings.TrimSpace(idOrKey)
	if in == "" {
		return "", fmt.Errorf("%w: empty id or key", ErrUnknownCustomField)
	}
	cat, err := c.catalogue(ctx)
	if err != nil {
		return "", fmt.Errorf("highlevel: resolve custom field %q: %w", in, err)
	}
	if id, ok := cat.resolve(in); ok {
		return id, nil
	}
	floor := min(missRefreshFloor, c.ttl)
	if c.now().Sub(cat.fetchedAt) >= floor {
		cat, err = c.fetchCatalogue(ctx, func(cur *catalogue, _ time.Time) bool {
			return c.now().Sub(cur.fetchedAt) >= floor
		})
		if err != nil {
			return "", fmt.Errorf("highlevel: resolve custom field %q: %w", in, err)
		}
		if id, ok := cat.resolve(in); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: %q is neither an id nor a key of location %s", ErrUnknownCustomField, in, c.locationID)
}

// UpdateCustomFields writes custom field values to a contact (PUT
// /contacts/{id} with {"customFields":[...]}) in HighLevel's write shape:
// {"id","field_value"} or {"key","field_value"}, the key without its
// "contact." prefix. Other fields of the contact are left alone. No fields
// means no request; a FieldWrite with neither ID nor Key is an error and
// nothing is sent.
func (c *Client) UpdateCustomFields(ctx context.Context, contactID string, fields []FieldWrite) error {
	if err := validID("contact id", contactID); err != nil {
		return err
	}
	if len(fields) == 0 {
		return nil
	}
	entries := make([]map[string]any, 0, len(fields))
	var secrets []string
	for i, f := range fields {
		if v, ok := f.Value.(string); ok && f.Secret {
			secrets = append(secrets, v)
		}
		id, key := strings.TrimSpace(f.ID), strings.TrimSpace(f.Key)
		switch {
		case id != "":
			entries = append(entries, map[string]any{"id": id, "field_value": f.Value})
		case key != "":
			key = strings.TrimPrefix(key, "contact.")
			entries = append(entries, map[string]any{"key": key, "field_value": f.Value})
		default:
			return fmt.Errorf("highlevel: update contact %s: custom field %d has neither ID nor Key", contactID, i)
		}
	}
	var out struct {
		Succeeded *bool `json:"succeded"` // sic: HighLevel's spelling
	}
	err := c.do(ctx, call{
		method:     http.MethodPut,
		path:       "/contacts/{contactId}",
		pathParams: map[string]string{"contactId": contactID},
		body:       map[string]any{"customFields": entries},
		secrets:    secrets,
	}, &out)
	if err != nil {
		return fmt.Errorf("highlevel: update contact %s: %w", contactID, err)
	}
	if out.Succeeded != nil && !*out.Succeeded {
		return fmt.Errorf("highlevel: update contact %s: %w", contactID,
			&APIError{Status: http.StatusOK, Message: `answer says "succeded": false`})
	}
	return nil
}

// catalogue returns the cached catalogue, fetching it when missing or
// older than the TTL.
func (c *Client) catalogue(ctx context.Context) (*catalogue, error) {
	if c.locationID == "" {
		return nil, errNoLocation
	}
	c.catMu.Lock()
	cur := c.cat
	fresh := cur != nil && (c.now().Sub(cur.fetchedAt) < c.ttl || c.now().Before(c.catRetryAt))
	c.catMu.Unlock()
	if fresh {
		return cur, nil
	}
	cat, err := c.fetchCatalogue(ctx, func(cur *catalogue, retryAt time.Time) bool {
		return c.now().Sub(cur.fetchedAt) >= c.ttl && !c.now().Before(retryAt)
	})
	if err != nil {
		if cur != nil && ctx.Err() == nil {
			c.catMu.Lock()
			c.catRetryAt = c.now().Add(failedRefreshBackoff)
			c.catMu.Unlock()
			c.log.WarnContext(ctx, "highlevel: custom field catalogue refresh failed, using the cached one",
				slog.Time("fetched_at", cur.fetchedAt), slog.String("error", err.Error()))
			return cur, nil
		}
		return nil, err
	}
	return cat, nil
}

// fetchCatalogue fetches the catalogue unless, once this caller holds the
// fetch slot, the cached one is no longer stale (another caller refreshed
// it while this one waited).
func (c *Client) fetchCatalogue(ctx context.Context, stale func(cur *catalogue, retryAt time.Time) bool) (*catalogue, error) {
	select {
	case c.catFetch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.catFetch }()

	c.catMu.Lock()
	cur, retryAt := c.cat, c.catRetryAt
	c.catMu.Unlock()
	if cur != nil && !stale(cur, retryAt) {
		return cur, nil
	}

	var out struct {
		CustomFields []CustomField `json:"customFields"`
	}
	err := c.do(ctx, call{
		method:     http.MethodGet,
		path:       "/locations/{locationId}/customFields",
		pathParams: map[string]string{"locationId": c.locationID},
		query:      map[string]string{"model": "contact"},
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("get custom field catalogue: %w", err)
	}
	cat := newCatalogue(out.CustomFields, c.now())
	c.catMu.Lock()
	c.cat = cat
	c.catRetryAt = time.Time{}
	c.catMu.Unlock()
	c.log.DebugContext(ctx, "highlevel: custom field catalogue loaded", slog.Int("fields", len(cat.fields)))
	return cat, nil
}
