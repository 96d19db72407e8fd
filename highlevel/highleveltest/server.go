// Package highleveltest is a fake of HighLevel's API v2 for tests: the
// contact, tag, duplicate-search, search and custom field catalogue endpoints the
// bridge uses, with HighLevel's header checks, status codes, JSON shapes and
// rate-limit headers as /work/shared/reference/highlevel.md records them.
// It keeps state in memory, records every request, and can be told to
// rate-limit or fail. Safe for concurrent use.
package highleveltest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// HighLevel's published limits, the fake's defaults.
const (
	DefaultBurst       = 100
	DefaultBurstWindow = 10 * time.Second
	DailyLimit         = 200_000
)

// Write is the decoded JSON body of one PUT /contacts/{id} the fake
// accepted for processing (authenticated, not failed, not rate-limited),
// recorded before validation so a test sees exactly what the client sent.
type Write struct {
	ContactID string
	Body      map[string]any
}

// Request is one request the fake answered, in arrival order. Version is the
// Version header as received ("" when missing); At is when it arrived, so a
// test can check a client's pace against the burst window.
type Request struct {
	At      time.Time
	Method  string
	Path    string
	Query   string
	Version string
	Status  int
}

// Server is a running fake. URL, Token and LocationID are what a client
// needs (see Config); Token is random, so a client with any other token
// gets HighLevel's 401.
type Server struct {
	URL        string
	Token      string
	LocationID string

	t   testing.TB
	srv *httptest.Server
	mux *http.ServeMux

	mu             sync.Mutex
	contacts       map[string]*highlevel.Contact
	order          []string // contact ids in creation order, for deterministic search
	fields         []highlevel.CustomField
	writes         []Write
	searches       []map[string]any
	requests       []Request
	burst          int
	window         time.Duration
	hits           []time.Time // admitted requests inside the burst window
	daily          int
	retryAfter     time.Duration
	failLeft       int
	failStatus     int
	unknownStatus  int
	unknownMessage any
	writeFailLeft  int
	writeFailCode  int
	writeFailEcho  bool
}

// New starts a fake on a local port and stops it when the test ends. The
// token looks like a Private Integration token and the location id like a
// HighLevel id, both random. Rate limiting starts at HighLevel's 100
// requests per 10 s.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Token:          "pit-" + randomHex(16),
		LocationID:     testkit.RandomID(20),
		t:              t,
		contacts:       make(map[string]*highlevel.Contact),
		burst:          DefaultBurst,
		window:         DefaultBurstWindow,
		unknownStatus:  http.StatusNotFound,
		unknownMessage: "Contact not found",
	}
	s.mux = s.routes()
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Config returns a highlevel.Config pointing at the fake, with its token and
// location id.
func (s *Server) Config() highlevel.Config {
	return highlevel.Config{BaseURL: s.URL, Token: s.Token, LocationID: s.LocationID}
}

// DeleteContact removes a contact, as deleting it in HighLevel does: the
// API answers 404 for it afterwards.
func (s *Server) DeleteContact(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.contacts, id)
}

// PutContact seeds or replaces a contact and returns it as stored: an empty
// ID gets a random one, an empty LocationID the fake's, tags are trimmed,
// lower-cased and de-duplicated as HighLevel stores them, custom fields
// given by Key are resolved to ids through the catalogue (an unknown key
// fails the test), numbers become float64 and arrays []string, as after a
// JSON round trip. Missing dates are set to now.
func (s *Server) PutContact(c highlevel.Contact) highlevel.Contact {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := cloneContact(c)
	if stored.ID == "" {
		stored.ID = testkit.RandomID(20)
	}
	if stored.LocationID == "" {
		stored.LocationID = s.LocationID
	}
	stored.Tags = normaliseTags(stored.Tags)
	stored.CustomFields = nil
	for _, f := range c.CustomFields {
		id := f.ID
		if id == "" {
			field, ok := s.fieldByKeyLocked(f.Key)
			if !ok {
				s.t.Fatalf("highleveltest: PutContact %s: custom field key %q is not in the catalogue; AddCustomField first", stored.ID, f.Key)
			}
			id = field.ID
		}
		if v, keep := storedValue(f.Value); keep {
			stored.CustomFields = append(stored.CustomFields, highlevel.CustomFieldValue{ID: id, Value: v})
		}
	}
	now := timestamp(time.Now())
	if stored.DateAdded == "" {
		stored.DateAdded = now
	}
	if stored.DateUpdated == "" {
		stored.DateUpdated = now
	}
	if _, exists := s.contacts[stored.ID]; !exists {
		s.order = append(s.order, stored.ID)
	}
	s.contacts[stored.ID] = &stored
	return cloneContact(stored)
}

// Contact returns a contact's current state, after any writes, as the API
// would report it (custom fields by id only).
func (s *Server) Contact(id string) (highlevel.Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[id]
	if !ok {
		return highlevel.Contact{}, false
	}
	return cloneContact(*c), true
}

// AddCustomField adds an entry to the location's custom field catalogue and
// returns it as stored: an empty ID gets a random one, an empty FieldKey is
// derived from Name the way HighLevel does ("My Field" ->
// "contact.my_field"), a FieldKey without the "contact." prefix gets it, and
// an empty DataType becomes "TEXT".
func (s *Server) AddCustomField(f highlevel.CustomField) highlevel.CustomField {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ID == "" {
		f.ID = testkit.RandomID(20)
	}
	if f.FieldKey == "" {
		f.FieldKey = keyFromName(f.Name)
	}
	if !strings.HasPrefix(f.FieldKey, "contact.") {
		f.FieldKey = "contact." + f.FieldKey
	}
	if f.DataType == "" {
		f.DataType = "TEXT"
	}
	if i := slices.IndexFunc(s.fields, func(g highlevel.CustomField) bool { return g.ID == f.ID }); i >= 0 {
		s.fields[i] = f
	} else {
		s.fields = append(s.fields, f)
	}
	return f
}

// Writes returns the bodies of the PUT /contacts/{id} requests so far, in
// order.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// Requests returns every request answered so far, in order, with its status.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// SetBurst sets the burst limit: past n admitted requests within a sliding
// window, requests get HighLevel's 429 with X-RateLimit-Remaining 0 and no
// Retry-After (unless SetRetryAfter). n <= 0 turns limiting off (headers
// then report the nominal 100 per window, never consumed); window <= 0 means
// 10 s. Resets the current window.
func (s *Server) SetBurst(n int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if window <= 0 {
		window = DefaultBurstWindow
	}
	s.burst, s.window, s.hits = n, window, nil
}

// SetRetryAfter makes 429 answers carry Retry-After (whole seconds, rounded
// up), which HighLevel does not document; d <= 0 removes it again.
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// FailNext makes the next n requests, whatever they are, answer status with
// a HighLevel-style error body before any other check (as a failing gateway
// would); they do not count against the rate limit.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = n, status
}

// FailWrites makes the next n PUT /contacts/{id} requests that pass the
// gateway's checks (headers, token, burst limit) answer status instead of
// being applied; other requests are served as usual. A 429 carries the
// rate-limit headers (and Retry-After when SetRetryAfter set one). With
// echo, the error's message quotes the request body the way validation
// errors can ("... received {"customFields":[...]}"), for tests that no
// written value leaks into an error. Failed writes are not in Writes.
func (s *Server) FailWrites(n int, status int, echo bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeFailLeft, s.writeFailCode, s.writeFailEcho = n, status, echo
}

// SetUnknownContact sets how an unknown contact id is answered. The default
// is what the reference documents first: 404, message "Contact not found".
// HighLevel also answers 400 or 422 with a message that is a string or an
// array of strings; message may be either.
func (s *Server) SetUnknownContact(status int, message any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknownStatus, s.unknownMessage = status, message
}

// fieldByKeyLocked finds a catalogue entry by key, with or without the
// "contact." prefix. s.mu must be held.
func (s *Server) fieldByKeyLocked(key string) (highlevel.CustomField, bool) {
	key = strings.TrimSpace(key)
	if key == "" {
		return highlevel.CustomField{}, false
	}
	if !strings.HasPrefix(key, "contact.") {
		key = "contact." + key
	}
	for _, f := range s.fields {
		if f.FieldKey == key {
			return f, true
		}
	}
	return highlevel.CustomField{}, false
}

func (s *Server) fieldByIDLocked(id string) (highlevel.CustomField, bool) {
	for _, f := range s.fields {
		if f.ID == id {
			return f, true
		}
	}
	return highlevel.CustomField{}, false
}

func cloneContact(c highlevel.Contact) highlevel.Contact {
	c.Tags = slices.Clone(c.Tags)
	fields := make([]highlevel.CustomFieldValue, len(c.CustomFields))
	for i, f := range c.CustomFields {
		if list, ok := f.Value.([]string); ok {
			f.Value = slices.Clone(list)
		}
		fields[i] = f
	}
	c.CustomFields = fields
	return c
}

// normaliseTags trims, lower-cases and de-duplicates tags, keeping order:
// HighLevel stores tag names lower-case.
func normaliseTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// storedValue normalises a custom field value as a JSON round trip would
// (numbers float64, arrays []string); keep is false for a cleared value
// (nil, "", empty array), which removes the field.
func storedValue(v any) (value any, keep bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	var x any
	if json.Unmarshal(b, &x) != nil {
		return nil, false
	}
	switch t := x.(type) {
	case nil:
		return nil, false
	case string:
		return t, t != ""
	case []any:
		list := make([]string, 0, len(t))
		for _, e := range t {
			switch e := e.(type) {
			case string:
				list = append(list, e)
			default:
				b, _ := json.Marshal(e)
				list = append(list, string(b))
			}
		}
		return list, len(list) > 0
	default:
		return t, true
	}
}

// keyFromName derives a field key from a display name as HighLevel does:
// lower-case, runs of other characters become "_".
func keyFromName(name string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			sep = false
			b.WriteRune(r)
			continue
		}
		sep = true
	}
	return "contact." + b.String()
}

// timestamp formats t the way HighLevel does: "2026-08-04T14:53:09.703Z".
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
