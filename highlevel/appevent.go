package highlevel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Contact event types of HighLevel Marketplace app webhooks, the values of
// AppEvent.Type this package knows. HighLevel sends many more (opportunity,
// note, task, ...); ParseAppEvent accepts those too.
const (
	EventContactCreate    = "ContactCreate"
	EventContactUpdate    = "ContactUpdate"
	EventContactDelete    = "ContactDelete"
	EventContactTagUpdate = "ContactTagUpdate"
	EventContactDndUpdate = "ContactDndUpdate"
)

// DefaultFreshWindow is the clock difference CheckFresh tolerates when given
// a window of zero or less: HighLevel's guidance is about 5 minutes.
const DefaultFreshWindow = 5 * time.Minute

// ErrStale means an app webhook's timestamp is too far from now, in either
// direction, or missing: a replay of an old delivery, or a clock badly out of
// step. Permanent for this delivery.
var ErrStale = errors.New("highlevel: webhook timestamp outside the accepted window")

// AppEvent is one HighLevel Marketplace app webhook: flat camelCase JSON
// whose envelope (type, webhookId, timestamp, appId, versionId, locationId)
// sits beside the event's own fields. Check its signature with
// Verifier.Verify over the raw body first, then parse it with ParseAppEvent
// and check it with CheckFresh.
//
// WebhookID is the dedupe key: HighLevel retries a delivery up to 12 times
// and an attacker may replay a signed one within the freshness window, so
// the caller (the bridge's store) must remember the ids it has accepted and
// reject a repeat. This package keeps no state.
type AppEvent struct {
	// Type is "type", such as EventContactUpdate. Never empty.
	Type string
	// WebhookID is "webhookId", a UUID unique per event. Never empty.
	WebhookID string
	// Timestamp is "timestamp" in UTC; zero when the payload had none, in
	// which case CheckFresh fails.
	Timestamp time.Time
	// LocationID is "locationId", the sub-account; AppID and VersionID
	// ("appId", "versionId") name the Marketplace app that subscribed.
	LocationID string
	AppID      string
	VersionID  string
	// ContactID is the contact the event is about: "id" for contact events
	// (Type starting with "Contact"), where it is never empty for the five
	// Event* types; "contactId", if any, for other events, whose "id" names
	// something else (an opportunity, a note, ...).
	ContactID string
	// Contact holds the contact fields of a contact event, decoded as
	// Contact's UnmarshalJSON does (tags array, customFields [{id,value}],
	// dnd, ...). Contact.ID is ContactID. Contact.Type is always empty:
	// in these payloads "type" is the event type, not the contact type. For
	// other events only ID and LocationID are set.
	Contact Contact
	// Raw holds every top-level key as sent, for fields this package does
	// not model (dndSettings, assignedTo, the bodies of other events). It
	// carries personal data: never log it.
	Raw map[string]json.RawMessage
}

// ParseAppEvent parses the body of a Marketplace app webhook. Verify the
// signature over the same bytes first.
//
// "timestamp" may be an RFC 3339 string, with or without fractional seconds
// ("2026-08-04T14:53:09Z", "2026-08-04T14:53:09.703Z", any offset), or Unix
// milliseconds, as a JSON integer or a string of digits (1785855189703,
// "1785855189703"). Unix seconds are not accepted as such: they would read
// as a moment in January 1970 and fail CheckFresh. A missing, null or empty
// timestamp leaves Timestamp zero; anything else, including a moment
// outside the years 0 to 9999, gives an error.
//
// Errors match ErrInvalidPayload and say what is wrong: a body that is not
// a JSON object, a missing or non-string "type" or "webhookId", an
// unparsable timestamp, or a contact event (one of the Event* constants)
// without a contact "id". They never repeat the body, which holds personal
// data. Other fields are read leniently, as Contact is. ParseAppEvent never
// panics.
func ParseAppEvent(body []byte) (*AppEvent, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty body, want a JSON object", ErrInvalidPayload)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidPayload, describeJSONError(trimmed, err))
	}
	if top == nil { // the body was the literal null
		return nil, fmt.Errorf("%w: body is null, want a JSON object", ErrInvalidPayload)
	}

	e := &AppEvent{Raw: top}
	var err error
	if e.Type, err = requiredString(top, "type"); err != nil {
		return nil, err
	}
	if e.WebhookID, err = requiredString(top, "webhookId"); err != nil {
		return nil, err
	}
	if e.Timestamp, err = parseEventTime(top["timestamp"]); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPayload, e.describe(), err)
	}
	e.LocationID = rawString(top["locationId"])
	e.AppID = rawString(top["appId"])
	e.VersionID = rawString(top["versionId"])

	if !strings.HasPrefix(e.Type, "Contact") {
		e.ContactID = rawString(top["contactId"])
		e.Contact = Contact{ID: e.ContactID, LocationID: e.LocationID}
		return e, nil
	}
	if err := e.Contact.UnmarshalJSON(trimmed); err != nil {
		// Unreachable: trimmed decoded as an object above. Kept so a change
		// to Contact's decoding cannot silently drop the contact.
		return nil, fmt.Errorf("%w: %s: contact fields: %v", ErrInvalidPayload, e.describe(), err)
	}
	e.Contact.Type = "" // "type" is the event type here, not the contact's
	e.Contact.Carried = slices.DeleteFunc(e.Contact.Carried, func(n string) bool { return n == "type" })
	e.ContactID = e.Contact.ID
	if e.ContactID == "" && knownContactEvent(e.Type) {
		return nil, fmt.Errorf("%w: %s has no contact id (\"id\")", ErrInvalidPayload, e.describe())
	}
	return e, nil
}

// CheckFresh returns nil when the event's timestamp is within window of now,
// in either direction, edges included, and an error matching ErrStale
// otherwise, or when the event has no timestamp. A window of zero or less
// means DefaultFreshWindow. The window bounds how long a captured delivery
// can be replayed; within it, rejecting a repeated WebhookID is the
// caller's job.
func (e *AppEvent) CheckFresh(now time.Time, window time.Duration) error {
	if window <= 0 {
		window = DefaultFreshWindow
	}
	if e == nil || e.Timestamp.IsZero() {
		return fmt.Errorf("%w: event has no timestamp", ErrStale)
	}
	// Sub saturates instead of overflowing, so far-off timestamps compare
	// correctly; avoid negating d, which would overflow at the minimum.
	d := now.Sub(e.Timestamp)
	switch {
	case d > window:
		return fmt.Errorf("%w: timestamp is %s old, window %s", ErrStale, d.Round(time.Second), window)
	case d < -window:
		return fmt.Errorf("%w: timestamp is %s in the future, window %s", ErrStale, (-d).Round(time.Second), window)
	}
	return nil
}

// describe names the event for an error message by its type and webhook
// id, which identify it without personal data. Either is replaced by its
// length when it does not look like an identifier, so an unverified body
// cannot smuggle text into logs through them.
func (e *AppEvent) describe() string {
	return identifier(e.Type) + " event " + identifier(e.WebhookID)
}

func identifier(s string) string {
	const maxLen = 64
	ok := len(s) <= maxLen
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Sprintf("(%d bytes)", len(s))
	}
	return s
}

func knownContactEvent(t string) bool {
	switch t {
	case EventContactCreate, EventContactUpdate, EventContactDelete, EventContactTagUpdate, EventContactDndUpdate:
		return true
	}
	return false
}

// requiredString reads an envelope field that must be a non-empty JSON
// string. Unlike contact fields it is not read leniently: these identify
// the event and key its deduplication.
func requiredString(top map[string]json.RawMessage, name string) (string, error) {
	raw, ok := top[name]
	if !ok || isJSONNull(raw) {
		return "", fmt.Errorf("%w: missing %q", ErrInvalidPayload, name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %q is a JSON %s, want a string", ErrInvalidPayload, name, jsonKind(raw))
	}
	if s = strings.TrimSpace(s); s == "" {
		return "", fmt.Errorf("%w: %q is empty", ErrInvalidPayload, name)
	}
	return s, nil
}

// parseEventTime reads "timestamp" in the forms ParseAppEvent documents.
// Its errors describe the value's shape, never the value.
func parseEventTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || isJSONNull(raw) {
		return time.Time{}, nil
	}
	var s string
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, errors.New("timestamp is not a valid JSON string")
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, nil
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		s = string(raw)
		if ms, ok := unixMillis(s); ok {
			return inRange(time.UnixMilli(ms).UTC())
		}
		return time.Time{}, fmt.Errorf("timestamp is a JSON number of %d bytes that is not integer Unix milliseconds", len(raw))
	default:
		return time.Time{}, fmt.Errorf("timestamp is a JSON %s, want an RFC 3339 string or Unix milliseconds", jsonKind(raw))
	}
	if ms, ok := unixMillis(s); ok {
		return inRange(time.UnixMilli(ms).UTC())
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp (a string of %d bytes) is neither RFC 3339 nor Unix milliseconds", len(s))
	}
	return inRange(t.UTC())
}

// inRange refuses a timestamp outside the years 0 to 9999, which no
// genuine event has and which time.Time cannot marshal to JSON.
func inRange(t time.Time) (time.Time, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, errors.New("timestamp is outside the years 0 to 9999")
	}
	return t, nil
}

// unixMillis parses an optionally signed run of ASCII digits that fits an
// int64.
func unixMillis(s string) (int64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	return ms, err == nil
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// jsonKind names the JSON type of a valid JSON value.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
