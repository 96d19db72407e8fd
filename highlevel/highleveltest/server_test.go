package highleveltest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
)

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends a raw request to the fake, authenticated unless auth says
// otherwise: auth == "" sends the fake's token, "-" sends none.
func call(t *testing.T, s *highleveltest.Server, method, path, body string, opts ...func(*http.Request)) answer {
	t.Helper()
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rdr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Version", highlevel.APIVersion)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func withoutHeader(name string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Del(name) }
}

func withHeader(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAuthFailuresAnswerLikeHighLevel(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1"})
	tests := []struct {
		name string
		opts []func(*http.Request)
		want string
	}{
		{"missing Version", []func(*http.Request){withoutHeader("Version")},
			`{"statusCode":401,"message":"version header was not found."}`},
		{"wrong token", []func(*http.Request){withHeader("Authorization", "Bearer pit-wrong")},
			`{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`},
		{"no Authorization", []func(*http.Request){withoutHeader("Authorization")},
			`{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`},
		{"token without Bearer", []func(*http.Request){withHeader("Authorization", s.Token)},
			`{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`},
	}
	for _, tt := range tests {
		a := call(t, s, "GET", "/contacts/c1", "", tt.opts...)
		if a.status != 401 || !reflect.DeepEqual(a.body, mustJSON(t, tt.want)) {
			t.Errorf("%s: %d %s, want 401 %s", tt.name, a.status, a.raw, tt.want)
		}
		if a.header.Get("X-RateLimit-Remaining") == "" {
			t.Errorf("%s: no X-RateLimit headers", tt.name)
		}
	}
	if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 200 {
		t.Errorf("good request: %d %s", a.status, a.raw)
	}
}

func TestEveryAnswerCarriesRateLimitHeaders(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1"})
	s.FailNext(1, 503)
	answers := []answer{
		call(t, s, "GET", "/contacts/c1", ""),      // 503
		call(t, s, "GET", "/contacts/c1", ""),      // 200
		call(t, s, "GET", "/contacts/missing", ""), // 404
		call(t, s, "GET", "/nowhere", ""),          // unknown route
	}
	wantStatus := []int{503, 200, 404, 404}
	wantRemaining := []string{"100", "99", "98", "97"}
	for i, a := range answers {
		if a.status != wantStatus[i] {
			t.Errorf("answer %d: status %d, want %d", i, a.status, wantStatus[i])
		}
		for _, h := range []string{"X-RateLimit-Max", "X-RateLimit-Remaining", "X-RateLimit-Interval-Milliseconds", "X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining"} {
			if a.header.Get(h) == "" {
				t.Errorf("answer %d: missing %s", i, h)
			}
		}
		if got := a.header.Get("X-RateLimit-Remaining"); got != wantRemaining[i] {
			t.Errorf("answer %d: Remaining %s, want %s", i, got, wantRemaining[i])
		}
	}
	if got := answers[1].header.Get("X-RateLimit-Max"); got != "100" {
		t.Errorf("Max = %s", got)
	}
	if got := answers[1].header.Get("X-RateLimit-Interval-Milliseconds"); got != "10000" {
		t.Errorf("Interval = %s", got)
	}
	if got := answers[1].header.Get("X-RateLimit-Daily-Remaining"); got != "199999" {
		t.Errorf("Daily remaining = %s", got)
	}
	if got := answers[3].body["message"]; got != "Cannot GET /nowhere" {
		t.Errorf("unknown route message = %v", got)
	}
}

func TestBurstLimit(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1"})
	s.SetBurst(2, 30*time.Second)
	for i := range 2 {
		if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := call(t, s, "GET", "/contacts/c1", "")
	if a.status != 429 || a.header.Get("X-RateLimit-Remaining") != "0" || a.header.Get("X-RateLimit-Max") != "2" ||
		a.header.Get("X-RateLimit-Interval-Milliseconds") != "30000" || a.header.Get("Retry-After") != "" {
		t.Errorf("over the burst: %d %v", a.status, a.header)
	}
	if a.body["statusCode"] != float64(429) {
		t.Errorf("429 body = %s", a.raw)
	}

	s.SetRetryAfter(1500 * time.Millisecond)
	s.SetBurst(1, time.Minute)
	call(t, s, "GET", "/contacts/c1", "")
	if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 429 || a.header.Get("Retry-After") != "2" {
		t.Errorf("with SetRetryAfter: %d Retry-After %q, want 429 and 2", a.status, a.header.Get("Retry-After"))
	}

	s.SetBurst(1, 50*time.Millisecond)
	call(t, s, "GET", "/contacts/c1", "")
	time.Sleep(60 * time.Millisecond)
	if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 200 {
		t.Errorf("after the window passed: %d", a.status)
	}

	s.SetBurst(0, 0)
	for range 5 {
		if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 200 || a.header.Get("X-RateLimit-Remaining") != "100" {
			t.Fatalf("limit off: %d remaining %s", a.status, a.header.Get("X-RateLimit-Remaining"))
		}
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1"})
	s.FailNext(2, 500)
	for i := range 2 {
		// Even a request that would fail auth gets the injected failure.
		a := call(t, s, "GET", "/contacts/c1", "", withoutHeader("Version"))
		if a.status != 500 || a.body["message"] != "Internal Server Error" {
			t.Errorf("request %d: %d %s", i, a.status, a.raw)
		}
	}
	if a := call(t, s, "GET", "/contacts/c1", ""); a.status != 200 {
		t.Errorf("after the failures: %d", a.status)
	}
	reqs := s.Requests()
	if got := []int{reqs[0].Status, reqs[1].Status, reqs[2].Status}; !slices.Equal(got, []int{500, 500, 200}) {
		t.Errorf("recorded statuses %v", got)
	}
	if reqs[2].Version != highlevel.APIVersion || reqs[0].Version != "" {
		t.Errorf("recorded versions %q %q", reqs[0].Version, reqs[2].Version)
	}
}

func TestGetContactUsesTheReadShape(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	f := s.AddCustomField(highlevel.CustomField{Name: "Course Level"})
	s.PutContact(highlevel.Contact{
		ID: "c1", FirstName: "Ann", CompanyName: "Acme", PostalCode: "62701", DND: true,
		Tags:         []string{"VIP", "vip", " Course Two "},
		CustomFields: []highlevel.CustomFieldValue{{Key: "course_level", Value: "advanced"}},
	})
	a := call(t, s, "GET", "/contacts/c1", "")
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	c, ok := a.body["contact"].(map[string]any)
	if !ok {
		t.Fatalf("no contact object: %s", a.raw)
	}
	for key, want := range map[string]any{
		"id": "c1", "locationId": s.LocationID, "firstName": "Ann", "companyName": "Acme",
		"postalCode": "62701", "dnd": true, "tags": []any{"vip", "course two"},
		"customFields": []any{map[string]any{"id": f.ID, "value": "advanced"}},
	} {
		if !reflect.DeepEqual(c[key], want) {
			t.Errorf("contact[%q] = %#v, want %#v", key, c[key], want)
		}
	}
	for _, key := range []string{"dateAdded", "dateUpdated"} {
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", c[key].(string)); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	for _, snake := range []string{"first_name", "company_name", "contact_id"} {
		if _, ok := c[snake]; ok {
			t.Errorf("API contact has the webhook key %q", snake)
		}
	}
}

func TestUnknownContact(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	tests := []struct {
		status  int
		message any
		want    string
	}{
		{0, nil, `{"statusCode":404,"message":"Contact not found","error":"Not Found"}`},
		{400, "Contact not found", `{"statusCode":400,"message":"Contact not found","error":"Bad Request"}`},
		{422, []string{"Contact not found"}, `{"statusCode":422,"message":["Contact not found"],"error":"Unprocessable Entity"}`},
	}
	for _, tt := range tests {
		if tt.status != 0 {
			s.SetUnknownContact(tt.status, tt.message)
		}
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/contacts/nope", ""},
			{"PUT", "/contacts/nope", `{"firstName":"x"}`},
			{"POST", "/contacts/nope/tags", `{"tags":["a"]}`},
			{"DELETE", "/contacts/nope/tags", `{"tags":["a"]}`},
		} {
			a := call(t, s, r.method, r.path, r.body)
			if !reflect.DeepEqual(a.body, mustJSON(t, tt.want)) {
				t.Errorf("%s %s: %d %s, want %s", r.method, r.path, a.status, a.raw, tt.want)
			}
		}
	}
}

func TestPutContact(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	level := s.AddCustomField(highlevel.CustomField{Name: "Course Level"})
	credits := s.AddCustomField(highlevel.CustomField{Name: "Credits", FieldKey: "credits", DataType: "NUMERICAL"})
	stale := s.AddCustomField(highlevel.CustomField{Name: "Stale"})
	s.PutContact(highlevel.Contact{ID: "c1", FirstName: "Ann", LastName: "Lee", Tags: []string{"old", "vip"},
		CustomFields: []highlevel.CustomFieldValue{{ID: stale.ID, Value: "remove me"}}})

	body := `{
		"firstName": "Anna",
		"tags": ["New", "vip"],
		"customFields": [
			{"id": "` + level.ID + `", "field_value": "advanced"},
			{"key": "credits", "field_value": 12},
			{"key": "contact.stale", "field_value": ""},
			{"id": "` + level.ID + `", "value": "read shape is ignored"},
			{"id": "unknownFieldId", "field_value": "ignored"},
			{"key": "unknown_key", "field_value": "ignored"}
		]
	}`
	a := call(t, s, "PUT", "/contacts/c1", body)
	if a.status != 200 || a.body["succeded"] != true {
		t.Fatalf("PUT: %d %s", a.status, a.raw)
	}
	if _, ok := a.body["contact"].(map[string]any); !ok {
		t.Errorf("PUT answer has no contact: %s", a.raw)
	}
	got, _ := s.Contact("c1")
	if got.FirstName != "Anna" || got.LastName != "Lee" {
		t.Errorf("names = %q %q; firstName set, lastName untouched expected", got.FirstName, got.LastName)
	}
	if want := []string{"new", "vip"}; !slices.Equal(got.Tags, want) {
		t.Errorf("tags = %q, want %q (PUT replaces tags)", got.Tags, want)
	}
	wantFields := []highlevel.CustomFieldValue{{ID: level.ID, Value: "advanced"}, {ID: credits.ID, Value: float64(12)}}
	if !reflect.DeepEqual(got.CustomFields, wantFields) {
		t.Errorf("custom fields = %+v, want %+v", got.CustomFields, wantFields)
	}
	writes := s.Writes()
	if len(writes) != 1 || writes[0].ContactID != "c1" || !reflect.DeepEqual(writes[0].Body, mustJSON(t, body)) {
		t.Errorf("writes = %+v", writes)
	}

	// A PUT without tags leaves them alone.
	call(t, s, "PUT", "/contacts/c1", `{"lastName":"Li"}`)
	if got, _ := s.Contact("c1"); !slices.Equal(got.Tags, []string{"new", "vip"}) || got.LastName != "Li" {
		t.Errorf("after a PUT without tags: %+v", got)
	}
}

func TestPutContactValidation(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1"})
	tests := []struct {
		body       string
		wantStatus int
		wantMsg    any
	}{
		{`{"locationId":"x"}`, 422, []any{"property locationId should not exist"}},
		{`{"customFields":{"id":"x"}}`, 422, []any{"customFields must be an array"}},
		{`{"tags":"a,b"}`, 422, []any{"tags must be an array of strings"}},
		{`{"firstName":5}`, 422, []any{"firstName must be a string"}},
		{`{"dnd":"yes"}`, 422, []any{"dnd must be a boolean value"}},
		{`not json`, 400, "Unexpected token in JSON body"},
	}
	for _, tt := range tests {
		a := call(t, s, "PUT", "/contacts/c1", tt.body)
		if a.status != tt.wantStatus || !reflect.DeepEqual(a.body["message"], tt.wantMsg) {
			t.Errorf("PUT %s: %d %s, want %d %v", tt.body, a.status, a.raw, tt.wantStatus, tt.wantMsg)
		}
	}
	if n := len(s.Writes()); n != len(tests)-1 {
		t.Errorf("%d writes recorded, want %d (every decodable PUT, before validation)", n, len(tests)-1)
	}
}

func TestTagEndpoints(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "c1", Tags: []string{"a"}})
	a := call(t, s, "POST", "/contacts/c1/tags", `{"tags":["B"," c ","a"]}`)
	if a.status != 201 || !reflect.DeepEqual(a.body["tags"], []any{"a", "b", "c"}) {
		t.Errorf("POST tags: %d %s", a.status, a.raw)
	}
	a = call(t, s, "DELETE", "/contacts/c1/tags", `{"tags":["A","c"]}`)
	if a.status != 200 || !reflect.DeepEqual(a.body["tags"], []any{"b"}) {
		t.Errorf("DELETE tags: %d %s", a.status, a.raw)
	}
	if a := call(t, s, "POST", "/contacts/c1/tags", `{"tags":"x"}`); a.status != 422 {
		t.Errorf("POST tags with a string: %d", a.status)
	}
	if got, _ := s.Contact("c1"); !slices.Equal(got.Tags, []string{"b"}) {
		t.Errorf("state tags = %q", got.Tags)
	}
}

func TestSearchDuplicate(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.PutContact(highlevel.Contact{ID: "first", Email: "Ann@Example.com"})
	s.PutContact(highlevel.Contact{ID: "second", Email: "ann@example.com"})
	q := "/contacts/search/duplicate?locationId=" + s.LocationID + "&email="
	if a := call(t, s, "GET", q+"ann%40example.com", ""); a.status != 200 || a.body["contact"].(map[string]any)["id"] != "first" {
		t.Errorf("search ann: %d %s", a.status, a.raw)
	}
	if a := call(t, s, "GET", q+"nobody%40example.com", ""); a.status != 200 || a.raw != "{\"contact\":null}\n" {
		t.Errorf("search nobody: %d %q", a.status, a.raw)
	}
	if a := call(t, s, "GET", "/contacts/search/duplicate?locationId=other&email=x", ""); a.status != 403 {
		t.Errorf("other location: %d", a.status)
	}
	if a := call(t, s, "GET", "/contacts/search/duplicate?email=x", ""); a.status != 422 {
		t.Errorf("no location: %d", a.status)
	}
}

func TestCustomFieldCatalogue(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	f := s.AddCustomField(highlevel.CustomField{Name: "Favourite Colour!"})
	if f.ID == "" || f.FieldKey != "contact.favourite_colour" || f.DataType != "TEXT" {
		t.Errorf("AddCustomField defaults: %+v", f)
	}
	a := call(t, s, "GET", "/locations/"+s.LocationID+"/customFields?model=contact", "")
	list, _ := a.body["customFields"].([]any)
	if a.status != 200 || len(list) != 1 {
		t.Fatalf("catalogue: %d %s", a.status, a.raw)
	}
	entry := list[0].(map[string]any)
	for k, want := range map[string]any{"id": f.ID, "name": "Favourite Colour!", "fieldKey": "contact.favourite_colour", "dataType": "TEXT", "model": "contact"} {
		if entry[k] != want {
			t.Errorf("entry[%q] = %v, want %v", k, entry[k], want)
		}
	}
	if a := call(t, s, "GET", "/locations/elsewhere/customFields?model=contact", ""); a.status != 403 || a.body["message"] != "The token does not have access to this location." {
		t.Errorf("other location: %d %s", a.status, a.raw)
	}
}

func TestPutContactSeeding(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	c := s.PutContact(highlevel.Contact{Email: "x@example.com", CustomFields: []highlevel.CustomFieldValue{{ID: "f", Value: 3}}})
	if len(c.ID) != 20 || c.LocationID != s.LocationID || c.DateAdded == "" {
		t.Errorf("seeded contact %+v", c)
	}
	if c.CustomFields[0].Value != float64(3) {
		t.Errorf("seeded value %#v, want float64 as after JSON", c.CustomFields[0].Value)
	}
	if s.Token == highleveltest.New(t).Token {
		t.Error("two fakes share a token")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := highleveltest.New(t)
	s.SetBurst(0, 0)
	f := s.AddCustomField(highlevel.CustomField{Name: "N"})
	s.PutContact(highlevel.Contact{ID: "c1"})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			call(t, s, "PUT", "/contacts/c1", `{"customFields":[{"id":"`+f.ID+`","field_value":"v"}],"tags":["t"]}`)
			call(t, s, "GET", "/contacts/c1", "")
			s.Contact("c1")
			s.Writes()
			s.Requests()
			if i%4 == 0 {
				s.PutContact(highlevel.Contact{ID: "c1"})
			}
		})
	}
	wg.Wait()
	if n := len(s.Requests()); n != 32 {
		t.Errorf("%d requests recorded, want 32", n)
	}
}
