package highlevel_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestParseAppEventFixtures(t *testing.T) {
	t.Parallel()
	const (
		location = "ve9EPM428h8vShlRW1KT"
		contact  = "nmFmQEsNgz6AVpgLVUJ0"
		app      = "66a1f0d2c8e37b5a9d6e2f4c"
		version  = "66a1f0d2c8e37b5a9d6e2f4d"
	)
	tests := []struct {
		file      string
		typ       string
		webhookID string
		timestamp time.Time
		contact   highlevel.Contact
		rawKeys   []string // top-level keys Contact does not model, kept in Raw
	}{
		{
			file: "app_contact_create.json", typ: highlevel.EventContactCreate,
			webhookID: "4b6c2a1e-9f3d-4e8a-b7c5-1d2e3f4a5b6c",
			timestamp: time.Date(2026, 8, 4, 14, 53, 10, 120e6, time.UTC),
			contact: highlevel.Contact{
				ID: contact, LocationID: location, FirstName: "Ann", LastName: "Lee", Name: "Ann Lee",
				Email: "ann.lee@example.com", Phone: "+15555550100", CompanyName: "Acme Learning",
				Address1: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701", Country: "US",
				Website: "https://acme.example", DateOfBirth: "1990-01-31T00:00:00.000Z", Source: "web form",
				Tags: []string{"vip", "course two"},
				CustomFields: []highlevel.CustomFieldValue{
					{ID: "BcdmQEsNgz6AVpgLVUJ0", Value: "advanced"},
					{ID: "Cr3d1tsNgz6AVpgLVUJ0", Value: float64(42)},
				},
				DateAdded: "2026-08-04T14:53:09.703Z",
			},
			rawKeys: []string{"assignedTo", "attachments"},
		},
		{
			file: "app_contact_update.json", typ: highlevel.EventContactUpdate,
			webhookID: "7d1e5f2a-3b4c-4d5e-8f9a-0b1c2d3e4f5a",
			timestamp: time.Date(2026, 8, 5, 9, 12, 44, 918e6, time.UTC),
			contact: highlevel.Contact{
				ID: contact, LocationID: location, FirstName: "Ann", LastName: "Lee-Park", Name: "Ann Lee-Park",
				Email: "ann.lee@example.com", Phone: "+15555550100", CompanyName: "Acme Learning",
				Address1: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701", Country: "US",
				Website: "https://acme.example", DateOfBirth: "1990-01-31T00:00:00.000Z", Source: "web form",
				Tags: []string{"vip", "course two", "course three"},
				CustomFields: []highlevel.CustomFieldValue{
					{ID: "BcdmQEsNgz6AVpgLVUJ0", Value: "expert"},
					{ID: "Cr3d1tsNgz6AVpgLVUJ0", Value: 42.5},
					{ID: "Int3r3stsgz6AVpgLVUJ", Value: []string{"go", "sql"}},
				},
				DateAdded: "2026-08-04T14:53:09.703Z",
			},
		},
		{
			file: "app_contact_delete.json", typ: highlevel.EventContactDelete,
			webhookID: "a3f9c0e1-2d4b-4c6a-9e8f-7b6a5c4d3e2f",
			timestamp: time.Date(2026, 8, 6, 18, 0, 1, 0, time.UTC),
			contact: highlevel.Contact{
				ID: contact, LocationID: location, FirstName: "Ann", LastName: "Lee-Park", Name: "Ann Lee-Park",
				Email: "ann.lee@example.com", Phone: "+15555550100", CompanyName: "Acme Learning",
				Tags: []string{"vip"}, DateAdded: "2026-08-04T14:53:09.703Z",
			},
		},
		{
			file: "app_contact_tag_update.json", typ: highlevel.EventContactTagUpdate,
			webhookID: "c5e7a9b1-d3f5-4a7c-8e9b-1c3d5e7f9a1b",
			timestamp: time.Date(2026, 8, 6, 14, 22, 3, 456e6, time.UTC), // Unix ms as a number
			contact: highlevel.Contact{
				ID: contact, LocationID: location, FirstName: "Ann", LastName: "Lee-Park", Name: "Ann Lee-Park",
				Email: "ann.lee@example.com", Phone: "+15555550100",
				Tags:      []string{"vip", "course two", "Needs Review"}, // trimmed, case kept
				DateAdded: "2026-08-04T14:53:09.703Z",
			},
		},
		{
			file: "app_contact_dnd_update.json", typ: highlevel.EventContactDndUpdate,
			webhookID: "e1f3a5c7-b9d1-4e3f-a5b7-c9d1e3f5a7b9",
			timestamp: time.Date(2026, 8, 6, 14, 23, 20, 0, time.UTC), // Unix ms as a string
			contact: highlevel.Contact{
				ID: contact, LocationID: location, FirstName: "Ann", LastName: "Lee-Park",
				Email: "ann.lee@example.com", DND: true,
			},
			rawKeys: []string{"dndSettings"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			ev, err := highlevel.ParseAppEvent(readFixture(t, tt.file))
			if err != nil {
				t.Fatalf("ParseAppEvent: %v", err)
			}
			if ev.Type != tt.typ || ev.WebhookID != tt.webhookID {
				t.Errorf("Type, WebhookID = %q, %q; want %q, %q", ev.Type, ev.WebhookID, tt.typ, tt.webhookID)
			}
			if !ev.Timestamp.Equal(tt.timestamp) || ev.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp = %v, want %v in UTC", ev.Timestamp, tt.timestamp)
			}
			if ev.LocationID != location || ev.AppID != app || ev.VersionID != version || ev.ContactID != contact {
				t.Errorf("LocationID, AppID, VersionID, ContactID = %q, %q, %q, %q", ev.LocationID, ev.AppID, ev.VersionID, ev.ContactID)
			}
			ev.Contact.Carried = nil // what the payload carried is tested in contact_test.go
			if !reflect.DeepEqual(ev.Contact, tt.contact) {
				t.Errorf("Contact =\n%+v\nwant\n%+v", ev.Contact, tt.contact)
			}
			if ev.Contact.Type != "" {
				t.Errorf("Contact.Type = %q: the event type leaked into the contact type", ev.Contact.Type)
			}
			for _, k := range append([]string{"type", "webhookId", "timestamp", "id"}, tt.rawKeys...) {
				if _, ok := ev.Raw[k]; !ok {
					t.Errorf("Raw lacks %q", k)
				}
			}
		})
	}
}

func TestParseAppEventCustomFieldsAndTags(t *testing.T) {
	t.Parallel()
	ev, err := highlevel.ParseAppEvent(readFixture(t, "app_contact_update.json"))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"BcdmQEsNgz6AVpgLVUJ0": "expert",
		"Cr3d1tsNgz6AVpgLVUJ0": "42.5",
		"Int3r3stsgz6AVpgLVUJ": "go, sql",
	} {
		if got, ok := ev.Contact.Custom(id); !ok || got != want {
			t.Errorf("Custom(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
	if got, _ := ev.Contact.Standard("tags"); got != "vip, course two, course three" {
		t.Errorf(`Standard("tags") = %q`, got)
	}

	// Contact's leniency carries over to app events.
	ev, err = highlevel.ParseAppEvent([]byte(`{"type":"ContactUpdate","webhookId":"w1","id":12345,"locationId":" l1 ",
		"tags":"a, b,,","dnd":"true","customFields":[{"id":"f1","value":7},{"value":"no id"},"junk",{"id":"f2","value":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := highlevel.Contact{
		ID: "12345", LocationID: "l1", DND: true, Tags: []string{"a", "b"},
		CustomFields: []highlevel.CustomFieldValue{{ID: "f1", Value: float64(7)}, {ID: "f2"}},
	}
	if !slices.Equal(ev.Contact.Carried, []string{"dnd", "tags"}) {
		t.Errorf("Carried = %q, want dnd and tags (type is the event's, not the contact's)", ev.Contact.Carried)
	}
	ev.Contact.Carried = nil
	if ev.ContactID != "12345" || ev.LocationID != "l1" || !reflect.DeepEqual(ev.Contact, want) {
		t.Errorf("ContactID %q, LocationID %q, Contact %+v; want %+v", ev.ContactID, ev.LocationID, ev.Contact, want)
	}
}

func TestParseAppEventTimestamps(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 8, 4, 14, 53, 9, 0, time.UTC)
	tests := []struct {
		name      string
		timestamp string // JSON value; "" leaves the key out
		want      time.Time
		wantErr   string
	}{
		{"RFC 3339", `"2026-08-04T14:53:09Z"`, at, ""},
		{"RFC 3339 with milliseconds", `"2026-08-04T14:53:09.703Z"`, at.Add(703 * time.Millisecond), ""},
		{"RFC 3339 with nanoseconds", `"2026-08-04T14:53:09.000000001Z"`, at.Add(1), ""},
		{"RFC 3339 with an offset", `"2026-08-04T16:53:09+02:00"`, at, ""},
		{"RFC 3339 padded", `" 2026-08-04T14:53:09Z "`, at, ""},
		{"Unix ms number", `1785855189703`, at.Add(703 * time.Millisecond), ""},
		{"Unix ms string", `"1785855189703"`, at.Add(703 * time.Millisecond), ""},
		{"Unix ms zero", `0`, time.UnixMilli(0).UTC(), ""},
		{"missing", ``, time.Time{}, ""},
		{"null", `null`, time.Time{}, ""},
		{"empty string", `""`, time.Time{}, ""},
		{"no zone", `"2026-08-04T14:53:09"`, time.Time{}, "neither RFC 3339 nor Unix milliseconds"},
		{"space instead of T", `"2026-08-04 14:53:09Z"`, time.Time{}, "neither RFC 3339 nor Unix milliseconds"},
		{"words", `"yesterday"`, time.Time{}, "neither RFC 3339 nor Unix milliseconds"},
		{"digits and letters", `"17858551897O3"`, time.Time{}, "neither RFC 3339 nor Unix milliseconds"},
		{"fractional number", `1785855189703.5`, time.Time{}, "not integer Unix milliseconds"},
		{"exponent", `1.785855189703e12`, time.Time{}, "not integer Unix milliseconds"},
		{"overflowing number", `99999999999999999999`, time.Time{}, "not integer Unix milliseconds"},
		{"overflowing string", `"99999999999999999999"`, time.Time{}, "neither RFC 3339 nor Unix milliseconds"},
		{"year 10000 in ms", `253402300800000`, time.Time{}, "outside the years 0 to 9999"},
		{"year -1 after the offset", `"0000-01-01T00:00:00+01:00"`, time.Time{}, "outside the years 0 to 9999"},
		{"last ms of year 9999", `253402300799999`, time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), ""},
		{"boolean", `true`, time.Time{}, "JSON boolean"},
		{"object", `{"seconds":1}`, time.Time{}, "JSON object"},
		{"array", `["2026-08-04T14:53:09Z"]`, time.Time{}, "JSON array"},
	}
	for _, tt := range tests {
		body := `{"type":"ContactUpdate","webhookId":"w1","id":"c1"`
		if tt.timestamp != "" {
			body += `,"timestamp":` + tt.timestamp
		}
		body += `}`
		ev, err := highlevel.ParseAppEvent([]byte(body))
		if tt.wantErr != "" {
			if !errors.Is(err, highlevel.ErrInvalidPayload) || ev != nil {
				t.Errorf("%s: ParseAppEvent = %+v, %v; want ErrInvalidPayload", tt.name, ev, err)
				continue
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "ContactUpdate event w1") {
				t.Errorf("%s: error %q, want it to name the event and say %q", tt.name, err, tt.wantErr)
			}
			if v := strings.Trim(tt.timestamp, `"`); len(v) > 3 && strings.Contains(err.Error(), v) {
				t.Errorf("%s: error %q repeats the timestamp", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !ev.Timestamp.Equal(tt.want) || ev.Timestamp.IsZero() != tt.want.IsZero() {
			t.Errorf("%s: Timestamp = %v, want %v", tt.name, ev.Timestamp, tt.want)
		}
		if !ev.Timestamp.IsZero() && ev.Timestamp.Location() != time.UTC {
			t.Errorf("%s: Timestamp %v is not in UTC", tt.name, ev.Timestamp)
		}
	}
}

func TestParseAppEventInvalid(t *testing.T) {
	t.Parallel()
	const pii = "ann.lee@example.com"
	tests := []struct {
		name, body, wantDetail string
	}{
		{"empty", ``, "empty body"},
		{"whitespace", " \n\t", "empty body"},
		{"null", `null`, "body is null"},
		{"truncated", `{"type":"ContactUpdate","email":"` + pii + `",`, "malformed JSON"},
		{"trailing data", `{"type":"ContactUpdate","webhookId":"w1","id":"c1"} {"email":"` + pii + `"}`, "malformed JSON"},
		{"form encoded", `type=ContactUpdate&email=` + pii, "malformed JSON"},
		{"array", `[{"type":"ContactUpdate","email":"` + pii + `"}]`, "want an object"},
		{"string", `"` + pii + `"`, "want an object"},
		{"missing type", `{"webhookId":"w1","id":"c1","email":"` + pii + `"}`, `missing "type"`},
		{"null type", `{"type":null,"webhookId":"w1","id":"c1"}`, `missing "type"`},
		{"numeric type", `{"type":7,"webhookId":"w1","id":"c1"}`, `"type" is a JSON number, want a string`},
		{"blank type", `{"type":"  ","webhookId":"w1","id":"c1"}`, `"type" is empty`},
		{"missing webhookId", `{"type":"ContactCreate","id":"c1","email":"` + pii + `"}`, `missing "webhookId"`},
		{"object webhookId", `{"type":"ContactCreate","webhookId":{"id":"w1"},"id":"c1"}`, `"webhookId" is a JSON object, want a string`},
		{"empty webhookId", `{"type":"ContactCreate","webhookId":"","id":"c1"}`, `"webhookId" is empty`},
		{"contact event without id", `{"type":"ContactDelete","webhookId":"w1","email":"` + pii + `"}`, `ContactDelete event w1 has no contact id`},
		{"contact event with null id", `{"type":"ContactTagUpdate","webhookId":"w1","id":null,"tags":["vip"]}`, `has no contact id`},
		{"bad timestamp", `{"type":"ContactUpdate","webhookId":"w1","id":"c1","timestamp":"` + pii + `"}`, `timestamp`},
		{"odd ids are not echoed", `{"type":"ContactUpdate","webhookId":"` + pii + `","id":"c1","timestamp":"x"}`, `ContactUpdate event (19 bytes)`},
	}
	for _, tt := range tests {
		ev, err := highlevel.ParseAppEvent([]byte(tt.body))
		if !errors.Is(err, highlevel.ErrInvalidPayload) || ev != nil {
			t.Errorf("%s: ParseAppEvent = %+v, %v; want nil, ErrInvalidPayload", tt.name, ev, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantDetail) {
			t.Errorf("%s: error %q, want it to say %q", tt.name, err, tt.wantDetail)
		}
		if strings.Contains(err.Error(), pii) {
			t.Errorf("%s: error %q repeats the body", tt.name, err)
		}
		if highlevel.Retryable(err) {
			t.Errorf("%s: invalid payload is retryable", tt.name)
		}
	}
}

func TestParseAppEventOtherTypes(t *testing.T) {
	t.Parallel()
	// An event about something else: "id" is not a contact id.
	ev, err := highlevel.ParseAppEvent([]byte(`{"type":"OpportunityCreate","webhookId":"w1","locationId":"l1",
		"id":"opp1","contactId":"c9","name":"Deal","email":"x@example.com","timestamp":"2026-08-04T14:53:09Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := highlevel.Contact{ID: "c9", LocationID: "l1"}
	ev.Contact.Carried = nil
	if ev.ContactID != "c9" || !reflect.DeepEqual(ev.Contact, want) {
		t.Errorf("ContactID %q, Contact %+v; want c9 and only ids", ev.ContactID, ev.Contact)
	}
	if string(ev.Raw["id"]) != `"opp1"` || string(ev.Raw["name"]) != `"Deal"` {
		t.Errorf("Raw = %s", ev.Raw)
	}

	// Events without a contact at all still parse.
	ev, err = highlevel.ParseAppEvent([]byte(`{"type":"AppInstall","webhookId":"w2","appId":"a1","locationId":"l1"}`))
	if err != nil || ev.ContactID != "" || ev.AppID != "a1" {
		t.Errorf("AppInstall: %+v, %v", ev, err)
	}

	// A contact event type this package does not know yet reads "id" but
	// does not insist on it.
	ev, err = highlevel.ParseAppEvent([]byte(`{"type":"ContactMerged","webhookId":"w3","id":"c1","type2":"x"}`))
	if err != nil || ev.ContactID != "c1" || ev.Contact.ID != "c1" {
		t.Errorf("ContactMerged with id: %+v, %v", ev, err)
	}
	if _, err := highlevel.ParseAppEvent([]byte(`{"type":"ContactMerged","webhookId":"w3"}`)); err != nil {
		t.Errorf("ContactMerged without id: %v", err)
	}
}

func TestCheckFresh(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 8, 4, 14, 53, 9, 0, time.UTC)
	ev := &highlevel.AppEvent{Type: highlevel.EventContactUpdate, WebhookID: "w1", Timestamp: ts}
	const window = 2 * time.Minute
	tests := []struct {
		name    string
		now     time.Time
		window  time.Duration
		wantErr string // "" for fresh
	}{
		{"same instant", ts, window, ""},
		{"exactly window old", ts.Add(window), window, ""},
		{"exactly window ahead", ts.Add(-window), window, ""},
		{"1ns too old", ts.Add(window + 1), window, "old"},
		{"1ns too far ahead", ts.Add(-window - 1), window, "in the future"},
		{"an hour old", ts.Add(time.Hour), window, "1h0m0s old, window 2m0s"},
		{"zero window means 5m: edge", ts.Add(5 * time.Minute), 0, ""},
		{"zero window means 5m: past", ts.Add(5*time.Minute + time.Millisecond), 0, "window 5m0s"},
		{"negative window means 5m", ts.Add(-5 * time.Minute), -time.Second, ""},
		{"now in another zone", ts.In(time.FixedZone("UTC+2", 2*3600)).Add(time.Minute), window, ""},
		{"year 1", time.Time{}.Add(time.Second), window, "in the future"},
		{"far future", ts.AddDate(5000, 0, 0), window, "old"},
	}
	for _, tt := range tests {
		err := ev.CheckFresh(tt.now, tt.window)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: CheckFresh = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, highlevel.ErrStale) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: CheckFresh = %v, want ErrStale saying %q", tt.name, err, tt.wantErr)
		}
	}

	for name, e := range map[string]*highlevel.AppEvent{
		"no timestamp":   {Type: "ContactUpdate", WebhookID: "w1"},
		"nil event":      nil,
		"ancient":        {Timestamp: time.UnixMilli(-1 << 62)},
		"far-off future": {Timestamp: time.UnixMilli(1 << 62)},
	} {
		if err := e.CheckFresh(ts, window); !errors.Is(err, highlevel.ErrStale) {
			t.Errorf("%s: CheckFresh = %v, want ErrStale", name, err)
		}
	}
}

// FuzzParseAppEvent checks that no input panics ParseAppEvent or
// CheckFresh, that errors match ErrInvalidPayload without repeating the
// body, and that a parsed event keeps its invariants. Run:
//
//	go test ./highlevel -run '^$' -fuzz FuzzParseAppEvent -fuzztime 1m -fuzzminimizetime 2s
func FuzzParseAppEvent(f *testing.F) {
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "app_*.json"))
	for _, p := range fixtures {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "{}", "null", "[]", `{"type":"ContactCreate","webhookId":"w"}`,
		`{"type":"ContactCreate","webhookId":"w","id":"c","timestamp":-9223372036854775808}`,
		`{"type":"X","webhookId":"w","timestamp":"2026-08-04T14:53:09.1+14:00"}`,
		`{"type":"ContactUpdate","webhookId":"w","id":1e999,"customFields":[{"id":"a","value":[{}]}]}`,
		`{"type":"OpportunityCreate","webhookId":"w","contactId":["c"]}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 8, 4, 14, 53, 9, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := highlevel.ParseAppEvent(body)
		if err != nil {
			if !errors.Is(err, highlevel.ErrInvalidPayload) {
				t.Fatalf("error %v does not match ErrInvalidPayload", err)
			}
			if ev != nil {
				t.Fatal("non-nil event with an error")
			}
			if trimmed := strings.TrimSpace(string(body)); len(trimmed) >= 8 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q repeats the body", err)
			}
			return
		}
		if ev.Type == "" || ev.WebhookID == "" || strings.TrimSpace(ev.Type) != ev.Type || strings.TrimSpace(ev.WebhookID) != ev.WebhookID {
			t.Fatalf("empty or untrimmed Type %q / WebhookID %q", ev.Type, ev.WebhookID)
		}
		if ev.ContactID != ev.Contact.ID {
			t.Fatalf("ContactID %q, Contact.ID %q", ev.ContactID, ev.Contact.ID)
		}
		if ev.Contact.Type != "" {
			t.Fatalf("Contact.Type %q set from the event type", ev.Contact.Type)
		}
		if slices.Contains([]string{highlevel.EventContactCreate, highlevel.EventContactUpdate, highlevel.EventContactDelete,
			highlevel.EventContactTagUpdate, highlevel.EventContactDndUpdate}, ev.Type) && ev.ContactID == "" {
			t.Fatalf("%s event without a contact id", ev.Type)
		}
		if !ev.Timestamp.IsZero() && ev.Timestamp.Location() != time.UTC {
			t.Fatalf("Timestamp %v not in UTC", ev.Timestamp)
		}
		if _, ok := ev.Raw["type"]; !ok {
			t.Fatal("Raw lacks type")
		}
		_ = ev.CheckFresh(now, 0)
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	})
}
