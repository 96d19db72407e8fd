package highleveltest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

// HighLevel's error messages, verbatim from the reference.
const (
	msgNoVersion     = "version header was not found."
	msgInvalidToken  = "Invalid token: access token is invalid"
	msgNoLocation    = "The token does not have access to this location."
	msgTooManyReqs   = "Too Many Requests" // 429 body text is undocumented
	headerVersion    = "Version"
	headerRetryAfter = "Retry-After"
)

// routes is the fake's whole HTTP surface.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /contacts/search/duplicate", s.handleSearchDuplicate)
	mux.HandleFunc("POST /contacts/search", s.handleSearch)
	mux.HandleFunc("GET /contacts/{contactId}", s.handleGetContact)
	mux.HandleFunc("PUT /contacts/{contactId}", s.handlePutContact)
	mux.HandleFunc("POST /contacts/{contactId}/tags", s.handleAddTags)
	mux.HandleFunc("DELETE /contacts/{contactId}/tags", s.handleRemoveTags)
	mux.HandleFunc("GET /locations/{locationId}/customFields", s.handleCustomFields)
	return mux
}

// serveHTTP runs the checks HighLevel's gateway makes, in this order:
// injected failures, the Version header, the bearer token, the burst limit;
// then routes. Every answer carries the X-RateLimit-* headers and is
// recorded.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	at := time.Now()
	s.serve(rec, r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		At:      at,
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Version: r.Header.Get(headerVersion),
		Status:  rec.status,
	})
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	if s.failLeft > 0 {
		s.failLeft--
		status := s.failStatus
		s.rateHeadersLocked(w.Header(), now)
		s.mu.Unlock()
		writeError(w, status, http.StatusText(status))
		return
	}
	s.mu.Unlock()

	if r.Header.Get(headerVersion) == "" {
		s.unauthorized(w, now, msgNoVersion)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		s.unauthorized(w, now, msgInvalidToken)
		return
	}

	s.mu.Lock()
	admitted := s.admitLocked(now)
	s.rateHeadersLocked(w.Header(), now)
	retryAfter := s.retryAfter
	s.mu.Unlock()
	if !admitted {
		if retryAfter > 0 {
			w.Header().Set(headerRetryAfter, strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
		}
		writeError(w, http.StatusTooManyRequests, msgTooManyReqs)
		return
	}

	if _, pattern := s.mux.Handler(r); pattern == "" {
		// NestJS's answer to an unknown route (and to a known path with
		// another method).
		writeJSON(w, http.StatusNotFound, map[string]any{
			"statusCode": http.StatusNotFound,
			"message":    fmt.Sprintf("Cannot %s %s", r.Method, r.URL.Path),
			"error":      "Not Found",
		})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) unauthorized(w http.ResponseWriter, now time.Time, msg string) {
	s.mu.Lock()
	s.rateHeadersLocked(w.Header(), now)
	s.mu.Unlock()
	body := map[string]any{"statusCode": http.StatusUnauthorized, "message": msg}
	if msg == msgInvalidToken {
		body["error"] = "Unauthorized"
	}
	writeJSON(w, http.StatusUnauthorized, body)
}

// admitLocked counts a request against the burst window; false means it is
// over the limit (and is not counted).
func (s *Server) admitLocked(now time.Time) bool {
	cut := now.Add(-s.window)
	s.hits = slices.DeleteFunc(s.hits, func(t time.Time) bool { return !t.After(cut) })
	if s.burst > 0 && len(s.hits) >= s.burst {
		return false
	}
	if s.burst > 0 {
		s.hits = append(s.hits, now)
	}
	s.daily++
	return true
}

func (s *Server) rateHeadersLocked(h http.Header, now time.Time) {
	limit, remaining := s.burst, 0
	if limit <= 0 {
		limit, remaining = DefaultBurst, DefaultBurst
	} else {
		cut := now.Add(-s.window)
		used := 0
		for _, t := range s.hits {
			if t.After(cut) {
				used++
			}
		}
		remaining = max(0, limit-used)
	}
	h.Set("X-RateLimit-Max", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Interval-Milliseconds", strconv.FormatInt(s.window.Milliseconds(), 10))
	h.Set("X-RateLimit-Limit-Daily", strconv.Itoa(DailyLimit))
	h.Set("X-RateLimit-Daily-Remaining", strconv.Itoa(max(0, DailyLimit-s.daily)))
}

// handleGetContact answers GET /contacts/{contactId} with {"contact":{...}}.
func (s *Server) handleGetContact(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.contacts[r.PathValue("contactId")]
	var body wireContact
	if ok {
		body = toWire(*c)
	}
	s.mu.Unlock()
	if !ok {
		s.unknownContact(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": body})
}

// writableFields are the properties PUT /contacts/{id} accepts. HighLevel's
// validation rejects any other property with 422 "property X should not
// exist"; those marked false are accepted but not modelled by the fake.
var writableFields = map[string]bool{
	"firstName": true, "lastName": true, "name": true, "email": true, "phone": true,
	"companyName": true, "address1": true, "city": true, "state": true, "postalCode": true,
	"country": true, "website": true, "timezone": true, "dateOfBirth": true, "source": true,
	"dnd": true, "tags": true, "customFields": true,
	"dndSettings": false, "inboundDndSettings": false, "assignedTo": false, "gender": false,
}

// handlePutContact answers PUT /contacts/{contactId}: standard fields are
// set, "tags" replaces all tags, and "customFields" entries are applied in
// the write shape only ({"id"|"key", "field_value"}). An entry without
// "field_value" (such as the read shape {"id","value"}) and an entry whose
// id or key is not in the catalogue are ignored without an error, the way
// HighLevel silently drops what it does not understand; a test sees that in
// Contact(). A cleared value ("", null, []) removes the field.
func (s *Server) handlePutContact(w http.ResponseWriter, r *http.Request) {
	if s.failWrite(w, r) {
		return
	}
	id := r.PathValue("contactId")
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.writes = append(s.writes, Write{ContactID: id, Body: body})
	s.mu.Unlock()

	var problems []string
	for _, k := range sortedKeys(body) {
		v := body[k]
		if _, ok := writableFields[k]; !ok {
			problems = append(problems, fmt.Sprintf("property %s should not exist", k))
			continue
		}
		switch k {
		case "dnd":
			if _, ok := v.(bool); !ok {
				problems = append(problems, "dnd must be a boolean value")
			}
		case "tags":
			if !isStringArray(v) {
				problems = append(problems, "tags must be an array of strings")
			}
		case "customFields":
			if _, ok := v.([]any); !ok {
				problems = append(problems, "customFields must be an array")
			}
		default:
			if writableFields[k] && v != nil {
				if _, ok := v.(string); !ok {
					problems = append(problems, k+" must be a string")
				}
			}
		}
	}
	if len(problems) > 0 {
		writeValidation(w, problems)
		return
	}

	s.mu.Lock()
	c, ok := s.contacts[id]
	if !ok {
		s.mu.Unlock()
		s.unknownContact(w)
		return
	}
	for _, f := range standardWritable {
		if v, ok := body[f.name]; ok {
			str, _ := v.(string)
			*f.field(c) = strings.TrimSpace(str)
		}
	}
	if v, ok := body["dnd"].(bool); ok {
		c.DND = v
	}
	if v, ok := body["tags"]; ok {
		c.Tags = normaliseTags(toStrings(v))
	}
	if list, ok := body["customFields"].([]any); ok {
		for _, e := range list {
			s.applyCustomFieldLocked(c, e)
		}
	}
	c.DateUpdated = timestamp(time.Now())
	out := toWire(*c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"succeded": true, "contact": out})
}

// failWrite answers a write that FailWrites asked to fail, and reports
// whether it did.
func (s *Server) failWrite(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	if s.writeFailLeft <= 0 {
		s.mu.Unlock()
		return false
	}
	s.writeFailLeft--
	status, echo, retryAfter := s.writeFailCode, s.writeFailEcho, s.retryAfter
	s.mu.Unlock()
	msg := http.StatusText(status)
	if echo {
		raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		msg = "request could not be processed, received " + string(raw)
	}
	if status == http.StatusTooManyRequests && retryAfter > 0 {
		w.Header().Set(headerRetryAfter, strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	if status == http.StatusUnprocessableEntity {
		writeValidation(w, []string{msg})
	} else {
		writeError(w, status, msg)
	}
	return true
}

// standardWritable maps PUT properties to the contact fields they set.
var standardWritable = []struct {
	name  string
	field func(*highlevel.Contact) *string
}{
	{"firstName", func(c *highlevel.Contact) *string { return &c.FirstName }},
	{"lastName", func(c *highlevel.Contact) *string { return &c.LastName }},
	{"name", func(c *highlevel.Contact) *string { return &c.Name }},
	{"email", func(c *highlevel.Contact) *string { return &c.Email }},
	{"phone", func(c *highlevel.Contact) *string { return &c.Phone }},
	{"companyName", func(c *highlevel.Contact) *string { return &c.CompanyName }},
	{"address1", func(c *highlevel.Contact) *string { return &c.Address1 }},
	{"city", func(c *highlevel.Contact) *string { return &c.City }},
	{"state", func(c *highlevel.Contact) *string { return &c.State }},
	{"postalCode", func(c *highlevel.Contact) *string { return &c.PostalCode }},
	{"country", func(c *highlevel.Contact) *string { return &c.Country }},
	{"website", func(c *highlevel.Contact) *string { return &c.Website }},
	{"timezone", func(c *highlevel.Contact) *string { return &c.Timezone }},
	{"dateOfBirth", func(c *highlevel.Contact) *string { return &c.DateOfBirth }},
	{"source", func(c *highlevel.Contact) *string { return &c.Source }},
}

// applyCustomFieldLocked applies one customFields entry of a PUT. s.mu must
// be held.
func (s *Server) applyCustomFieldLocked(c *highlevel.Contact, entry any) {
	e, ok := entry.(map[string]any)
	if !ok {
		return
	}
	raw, ok := e["field_value"]
	if !ok {
		return // read shape or garbage: ignored
	}
	var field highlevel.CustomField
	found := false
	if id, _ := e["id"].(string); id != "" {
		field, found = s.fieldByIDLocked(id)
	} else if key, _ := e["key"].(string); key != "" {
		field, found = s.fieldByKeyLocked(key)
	}
	if !found {
		return
	}
	value, keep := storedValue(raw)
	i := slices.IndexFunc(c.CustomFields, func(v highlevel.CustomFieldValue) bool { return v.ID == field.ID })
	switch {
	case !keep && i >= 0:
		c.CustomFields = slices.Delete(c.CustomFields, i, i+1)
	case keep && i >= 0:
		c.CustomFields[i].Value = value
	case keep:
		c.CustomFields = append(c.CustomFields, highlevel.CustomFieldValue{ID: field.ID, Value: value})
	}
}

// handleAddTags answers POST /contacts/{contactId}/tags {"tags":[...]} with
// 201 {"tags":[all tags]}.
func (s *Server) handleAddTags(w http.ResponseWriter, r *http.Request) {
	s.changeTags(w, r, http.StatusCreated, func(have, change []string) []string {
		return normaliseTags(append(have, change...))
	})
}

// handleRemoveTags answers DELETE /contacts/{contactId}/tags {"tags":[...]}
// with {"tags":[remaining tags]}.
func (s *Server) handleRemoveTags(w http.ResponseWriter, r *http.Request) {
	s.changeTags(w, r, http.StatusOK, func(have, change []string) []string {
		drop := normaliseTags(change)
		return slices.DeleteFunc(have, func(t string) bool { return slices.Contains(drop, t) })
	})
}

func (s *Server) changeTags(w http.ResponseWriter, r *http.Request, status int, apply func(have, change []string) []string) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	tags, ok := body["tags"]
	if !ok || !isStringArray(tags) {
		writeValidation(w, []string{"tags must be an array of strings"})
		return
	}
	s.mu.Lock()
	c, ok := s.contacts[r.PathValue("contactId")]
	if !ok {
		s.mu.Unlock()
		s.unknownContact(w)
		return
	}
	c.Tags = apply(slices.Clone(c.Tags), toStrings(tags))
	c.DateUpdated = timestamp(time.Now())
	out := slices.Clone(c.Tags)
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{"tags": out})
}

// handleSearchDuplicate answers GET /contacts/search/duplicate?locationId=
// &email= with {"contact": {...}|null}; the oldest contact whose email
// matches case-insensitively wins.
func (s *Server) handleSearchDuplicate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	loc := q.Get("locationId")
	if loc == "" {
		writeValidation(w, []string{"locationId should not be empty", "locationId must be a string"})
		return
	}
	if loc != s.LocationID {
		writeError(w, http.StatusForbidden, msgNoLocation)
		return
	}
	email := strings.ToLower(strings.TrimSpace(q.Get("email")))
	s.mu.Lock()
	var found *wireContact
	if email != "" {
		for _, id := range s.order {
			c := s.contacts[id]
			if strings.ToLower(strings.TrimSpace(c.Email)) == email {
				wc := toWire(*c)
				found = &wc
				break
			}
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"contact": found})
}

// handleCustomFields answers GET /locations/{locationId}/customFields
// ?model=contact with the catalogue. The fake only holds contact fields, so
// model=opportunity gives an empty list.
func (s *Server) handleCustomFields(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("locationId") != s.LocationID {
		writeError(w, http.StatusForbidden, msgNoLocation)
		return
	}
	model := r.URL.Query().Get("model")
	s.mu.Lock()
	out := make([]wireCustomField, 0, len(s.fields))
	if model == "" || model == "contact" || model == "all" {
		for i, f := range s.fields {
			out = append(out, wireCustomField{
				ID: f.ID, Name: f.Name, FieldKey: f.FieldKey, DataType: f.DataType,
				Model: "contact", LocationID: s.LocationID, Position: i * 50,
			})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"customFields": out})
}

func (s *Server) unknownContact(w http.ResponseWriter) {
	s.mu.Lock()
	status, msg := s.unknownStatus, s.unknownMessage
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{
		"statusCode": status,
		"message":    msg,
		"error":      http.StatusText(status),
	})
}

// wireContact is a contact in the API's read shape, including a few keys
// the client does not model, as the real API sends them.
type wireContact struct {
	ID               string            `json:"id"`
	LocationID       string            `json:"locationId"`
	FirstName        string            `json:"firstName,omitempty"`
	LastName         string            `json:"lastName,omitempty"`
	Name             string            `json:"name,omitempty"`
	Email            string            `json:"email,omitempty"`
	Phone            string            `json:"phone,omitempty"`
	CompanyName      string            `json:"companyName,omitempty"`
	Address1         string            `json:"address1,omitempty"`
	City             string            `json:"city,omitempty"`
	State            string            `json:"state,omitempty"`
	PostalCode       string            `json:"postalCode,omitempty"`
	Country          string            `json:"country,omitempty"`
	Website          string            `json:"website,omitempty"`
	Timezone         string            `json:"timezone,omitempty"`
	DateOfBirth      string            `json:"dateOfBirth,omitempty"`
	Source           string            `json:"source,omitempty"`
	Type             string            `json:"type,omitempty"`
	DND              bool              `json:"dnd"`
	DNDSettings      map[string]any    `json:"dndSettings"`
	Tags             []string          `json:"tags"`
	CustomFields     []wireCustomValue `json:"customFields"`
	AdditionalEmails []string          `json:"additionalEmails"`
	Followers        []string          `json:"followers"`
	DateAdded        string            `json:"dateAdded,omitempty"`
	DateUpdated      string            `json:"dateUpdated,omitempty"`
}

// wireCustomValue is the read shape of a contact's custom field.
type wireCustomValue struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

type wireCustomField struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	FieldKey   string `json:"fieldKey"`
	DataType   string `json:"dataType"`
	Model      string `json:"model"`
	LocationID string `json:"locationId"`
	Position   int    `json:"position"`
}

func toWire(c highlevel.Contact) wireContact {
	w := wireContact{
		ID: c.ID, LocationID: c.LocationID, FirstName: c.FirstName, LastName: c.LastName,
		Name: c.Name, Email: c.Email, Phone: c.Phone, CompanyName: c.CompanyName,
		Address1: c.Address1, City: c.City, State: c.State, PostalCode: c.PostalCode,
		Country: c.Country, Website: c.Website, Timezone: c.Timezone,
		DateOfBirth: c.DateOfBirth, Source: c.Source, Type: c.Type, DND: c.DND,
		DNDSettings: map[string]any{}, Tags: slices.Clone(c.Tags),
		CustomFields:     make([]wireCustomValue, 0, len(c.CustomFields)),
		AdditionalEmails: []string{}, Followers: []string{},
		DateAdded: c.DateAdded, DateUpdated: c.DateUpdated,
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	for _, f := range c.CustomFields {
		w.CustomFields = append(w.CustomFields, wireCustomValue{ID: f.ID, Value: f.Value})
	}
	return w
}

// decodeBody reads a JSON object body, answering 400 as NestJS does when it
// is not one.
func decodeBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var body map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil || body == nil {
		writeError(w, http.StatusBadRequest, "Unexpected token in JSON body")
		return nil, false
	}
	return body, true
}

func writeValidation(w http.ResponseWriter, messages []string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"statusCode": http.StatusUnprocessableEntity,
		"message":    messages,
		"error":      "Unprocessable Entity",
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func isStringArray(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
