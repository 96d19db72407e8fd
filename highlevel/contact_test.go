package highlevel_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
)

func TestContactDecodesEveryField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	text := b.srv.AddCustomField(highlevel.CustomField{Name: "Course Level"})
	num := b.srv.AddCustomField(highlevel.CustomField{Name: "Credits", DataType: "NUMERICAL"})
	frac := b.srv.AddCustomField(highlevel.CustomField{Name: "Score", DataType: "NUMERICAL"})
	multi := b.srv.AddCustomField(highlevel.CustomField{Name: "Interests", DataType: "MULTIPLE_OPTIONS"})
	seeded := b.srv.PutContact(highlevel.Contact{
		ID: "ocQHyuzHvysMo5N5VsXc", FirstName: "Ann", LastName: "Lee", Name: "Ann Lee",
		Email: "ann@example.com", Phone: "+15555550100", CompanyName: "Acme",
		Address1: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701",
		Country: "US", Website: "https://acme.example", Timezone: "America/Chicago",
		DateOfBirth: "1990-01-31", Source: "web form", Type: "lead", DND: true,
		Tags: []string{"VIP", " course two "},
		CustomFields: []highlevel.CustomFieldValue{
			{ID: text.ID, Value: "advanced"},
			{ID: num.ID, Value: 42},
			{ID: frac.ID, Value: 3.5},
			{ID: multi.ID, Value: []string{"go", "sql"}},
		},
	})

	got, err := b.client.Contact(context.Background(), seeded.ID)
	if err != nil {
		t.Fatalf("Contact: %v", err)
	}
	want := highlevel.Contact{
		ID: seeded.ID, LocationID: b.srv.LocationID, FirstName: "Ann", LastName: "Lee", Name: "Ann Lee",
		Email: "ann@example.com", Phone: "+15555550100", CompanyName: "Acme",
		Address1: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701",
		Country: "US", Website: "https://acme.example", Timezone: "America/Chicago",
		DateOfBirth: "1990-01-31", Source: "web form", Type: "lead", DND: true,
		Tags: []string{"vip", "course two"}, // HighLevel stores tags lower-case
		CustomFields: []highlevel.CustomFieldValue{
			{ID: text.ID, Value: "advanced"},
			{ID: num.ID, Value: float64(42)},
			{ID: frac.ID, Value: 3.5},
			{ID: multi.ID, Value: []string{"go", "sql"}},
		},
		DateAdded: seeded.DateAdded, DateUpdated: seeded.DateUpdated,
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Contact =\n%+v\nwant\n%+v", *got, want)
	}

	for id, wantValue := range map[string]string{
		text.ID: "advanced", num.ID: "42", frac.ID: "3.5", multi.ID: "go, sql",
	} {
		if v, ok := got.Custom(id); !ok || v != wantValue {
			t.Errorf("Custom(%s) = %q, %v; want %q, true", id, v, ok, wantValue)
		}
	}
	if v, ok := got.Custom("nope"); ok {
		t.Errorf("Custom(unknown) = %q, true; want false", v)
	}
}

func TestContactUnmarshalIsLenient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		json string
		want highlevel.Contact
	}{
		{
			name: "numbers where strings are expected",
			json: `{"id":12345,"postalCode":62701,"phone":15555550100}`,
			want: highlevel.Contact{ID: "12345", PostalCode: "62701", Phone: "15555550100", Carried: []string{"phone", "postalCode"}},
		},
		{
			name: "nulls and unknown keys",
			json: `{"id":"c1","email":null,"tags":null,"customFields":null,"attributions":[{"x":1}],"dndSettings":{}}`,
			want: highlevel.Contact{ID: "c1", Carried: []string{"email", "tags"}},
		},
		{
			name: "tags as one string, dnd as a string",
			json: `{"id":"c1","tags":"a, b ,,c","dnd":"true"}`,
			want: highlevel.Contact{ID: "c1", Tags: []string{"a", "b", "c"}, DND: true, Carried: []string{"dnd", "tags"}},
		},
		{
			name: "custom field entries: read shape, write shape, junk skipped",
			json: `{"id":"c1","customFields":[{"id":"f1","value":"x"},{"id":"f2","field_value":7},"junk",{"value":"no id"},{"id":"f3","value":[1,"b"]}]}`,
			want: highlevel.Contact{ID: "c1", CustomFields: []highlevel.CustomFieldValue{
				{ID: "f1", Value: "x"}, {ID: "f2", Value: float64(7)}, {ID: "f3", Value: []string{"1", "b"}},
			}, Carried: []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got highlevel.Contact
			if err := json.Unmarshal([]byte(tt.json), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	var c highlevel.Contact
	if err := json.Unmarshal([]byte(`["not","an","object"]`), &c); err == nil {
		t.Error("Unmarshal of an array: no error")
	}
}

// TestContactJSONRoundTrip: a payload's contact keeps, through JSON, which
// fields it carried, an explicitly empty one (lastName) included.
func TestContactJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := highlevel.Contact{
		ID: "c1", FirstName: "Ann", DND: true, Tags: []string{"a"},
		CustomFields: []highlevel.CustomFieldValue{{ID: "f1", Value: "x"}, {Key: "My Field", Value: []string{"a", "b"}}},
		Carried:      []string{"firstName", "lastName", "dnd", "tags"},
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out highlevel.Contact
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	if out.Carries("email") || !out.Carries("lastName") || !out.Carries("name") {
		t.Errorf("Carries: email %v lastName %v name %v; want false, true, true", out.Carries("email"), out.Carries("lastName"), out.Carries("name"))
	}
}

// TestContactMarshalMatchesMap: a payload's contact is written directly,
// byte for byte as json.Marshal wrote it through a map (the stored jobs of
// an older hlbridge and a newer one's must read alike; FuzzParseWorkflowWebhook
// checks the same on arbitrary payloads).
func TestContactMarshalMatchesMap(t *testing.T) {
	t.Parallel()
	all := []string{"id", "locationId", "firstName", "lastName", "name", "email", "phone", "companyName",
		"address1", "city", "state", "postalCode", "country", "website", "timezone", "dateOfBirth",
		"source", "type", "dnd", "tags", "unknown", "customFields"}
	for _, c := range []highlevel.Contact{
		{ID: "c1", Carried: []string{}},
		{ID: "c1", LocationID: "loc", Carried: []string{"firstName"}},
		{ID: "c1", Carried: []string{"tags", "dnd"}},
		{ID: "c1", Tags: []string{}, Carried: []string{"tags"}},
		{ID: "c1", Tags: []string{"a", "b<>&"}, DND: true, Carried: []string{"tags", "dnd", "tags"}},
		{ID: `a"b\c`, FirstName: "Ann \u2028 é \x00\x1f\n\t", LastName: "\xff\xfe", Email: "a&b@example.com",
			Phone: "+1 <555>", Carried: all},
		{ID: "c1", LocationID: "loc", Email: "x@example.com", Carried: []string{"locationId", "id", "email"},
			CustomFields: []highlevel.CustomFieldValue{{ID: "f1", Value: "x"}, {Key: "My <Field>", Value: []string{"a", "b"}}, {Key: "n", Value: 1.5}}},
	} {
		got, err := c.MarshalJSON() // as the queue stores it, without json.Marshal's re-scan
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		want, err := highlevel.MarshalViaMap(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%+v:\ngot  %s\nwant %s", c, got, want)
		}
	}
}

func BenchmarkContactMarshal(b *testing.B) {
	c := highlevel.Contact{ID: "abc123", LocationID: "loc1", FirstName: "Ada", LastName: "Lovelace",
		Email: "ada@example.com", Tags: []string{"a", "b", "c"},
		CustomFields: []highlevel.CustomFieldValue{{Key: "Favourite colour", Value: "blue"}},
		Carried:      []string{"firstName", "lastName", "email", "tags"}}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			c.MarshalJSON()
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			highlevel.MarshalViaMap(c)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(c)
		}
	})
}

// TestContactOverlay: the newest payload wins field by field; what it left
// out keeps the older value; a complete contact replaces all.
func TestContactOverlay(t *testing.T) {
	t.Parallel()
	older := highlevel.Contact{ID: "c1", FirstName: "Ann", LastName: "Lee", Tags: []string{"a"},
		CustomFields: []highlevel.CustomFieldValue{{Key: "plan", Value: "gold"}, {Key: "city", Value: "Rome"}},
		Carried:      []string{"firstName", "lastName", "tags"}}
	later := highlevel.Contact{ID: "c1", LastName: "", Tags: []string{"b"},
		CustomFields: []highlevel.CustomFieldValue{{Key: "plan", Value: "silver"}},
		Carried:      []string{"lastName", "tags"}}
	got := older
	got.CustomFields = slices.Clone(older.CustomFields)
	got.Overlay(&later)
	want := highlevel.Contact{ID: "c1", FirstName: "Ann", LastName: "", Tags: []string{"b"},
		CustomFields: []highlevel.CustomFieldValue{{Key: "plan", Value: "silver"}, {Key: "city", Value: "Rome"}},
		Carried:      []string{"firstName", "lastName", "tags"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("overlay:\ngot  %+v\nwant %+v", got, want)
	}
	complete := highlevel.Contact{ID: "c1", Email: "x@example.com"}
	got.Overlay(&complete)
	if !reflect.DeepEqual(got, complete) {
		t.Errorf("overlay of a complete contact: got %+v, want %+v", got, complete)
	}
}

func TestStandard(t *testing.T) {
	t.Parallel()
	c := &highlevel.Contact{
		ID: "c1", LocationID: "loc", FirstName: "Ann", LastName: "Lee", Email: "ann@example.com",
		Phone: "+1555", CompanyName: "Acme", Address1: "1 Main", City: "Springfield", State: "IL",
		PostalCode: "62701", Country: "US", Website: "https://acme.example", Timezone: "UTC",
		DateOfBirth: "1990-01-31", Source: "form", Type: "lead", DND: true, Tags: []string{"a", "b"},
		DateAdded: "2026-01-01T00:00:00.000Z", DateUpdated: "2026-01-02T00:00:00.000Z",
	}
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"id", "c1", true},
		{"locationId", "loc", true},
		{"firstName", "Ann", true},
		{"lastName", "Lee", true},
		{"name", "Ann Lee", true}, // no full name: composed
		{"email", "ann@example.com", true},
		{"phone", "+1555", true},
		{"companyName", "Acme", true},
		{"address1", "1 Main", true},
		{"city", "Springfield", true},
		{"state", "IL", true},
		{"postalCode", "62701", true},
		{"country", "US", true},
		{"website", "https://acme.example", true},
		{"timezone", "UTC", true},
		{"dateOfBirth", "1990-01-31", true},
		{"source", "form", true},
		{"type", "lead", true},
		{"dnd", "true", true},
		{"tags", "a, b", true},
		{"dateAdded", "2026-01-01T00:00:00.000Z", true},
		{"dateUpdated", "2026-01-02T00:00:00.000Z", true},
		{"first_name", "", false}, // webhook spelling is not an API name
		{"FirstName", "", false},
		{"customFields", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := c.Standard(tt.name)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Standard(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}

	names := highlevel.StandardFieldNames()
	if !slices.IsSorted(names) {
		t.Errorf("StandardFieldNames not sorted: %v", names)
	}
	for _, n := range names {
		if _, ok := c.Standard(n); !ok {
			t.Errorf("StandardFieldNames lists %q but Standard does not know it", n)
		}
	}
	for _, tt := range tests {
		if tt.wantOK && !slices.Contains(names, tt.name) {
			t.Errorf("StandardFieldNames misses %q", tt.name)
		}
	}

	c.Name = "Dr Ann Lee"
	if got, _ := c.Standard("name"); got != "Dr Ann Lee" {
		t.Errorf(`Standard("name") with a full name = %q`, got)
	}
}

func TestCustomMatchesIDsThenKeys(t *testing.T) {
	t.Parallel()
	c := &highlevel.Contact{CustomFields: []highlevel.CustomFieldValue{
		{ID: "f1", Value: "by id"},
		{Key: "My Field", Value: "display name"},
		{Key: "contact.other_field", Value: float64(1200)},
		{Key: "Big", Value: 1e21},
		{Key: "flag", Value: true},
		{Key: "file", Value: map[string]any{"u": "https://x"}},
		{Key: "empty", Value: nil},
	}}
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"f1", "by id", true},
		{"My Field", "display name", true},
		{"my_field", "display name", true},
		{"contact.my_field", "display name", true},
		{" MY-FIELD ", "display name", true},
		{"other_field", "1200", true},
		{"Other Field", "1200", true},
		{"big", "1000000000000000000000", true},
		{"flag", "true", true},
		{"file", `{"u":"https://x"}`, true},
		{"empty", "", true},
		{"missing", "", false},
		{"", "", false},
		{"...", "", false},
	}
	for _, tt := range tests {
		got, ok := c.Custom(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Custom(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestContactByEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.PutContact(highlevel.Contact{ID: "c1", Email: "ann@example.com"})
	b.srv.PutContact(highlevel.Contact{ID: "c2", Email: "bob@example.com"})
	ctx := context.Background()

	got, err := b.client.ContactByEmail(ctx, "Bob@Example.com")
	if err != nil || got.ID != "c2" {
		t.Fatalf("ContactByEmail(bob) = %+v, %v; want c2", got, err)
	}
	_, err = b.client.ContactByEmail(ctx, "nobody@example.com")
	if !errors.Is(err, highlevel.ErrNotFound) {
		t.Errorf("ContactByEmail(nobody) error = %v, want ErrNotFound", err)
	}
	if highlevel.Retryable(err) {
		t.Errorf("ErrNotFound from ContactByEmail is retryable")
	}

	noLoc := setup(t, func(c *highlevel.Config) { c.LocationID = "" })
	if _, err := noLoc.client.ContactByEmail(ctx, "ann@example.com"); err == nil {
		t.Error("ContactByEmail without a LocationID: no error")
	}
	if n := len(noLoc.srv.Requests()); n != 0 {
		t.Errorf("ContactByEmail without a LocationID sent %d requests", n)
	}
}

func TestTags(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.PutContact(highlevel.Contact{ID: "c1", Tags: []string{"old"}})
	ctx := context.Background()

	if err := b.client.AddTags(ctx, "c1", []string{"VIP", " ", "course two"}); err != nil {
		t.Fatalf("AddTags: %v", err)
	}
	if err := b.client.RemoveTags(ctx, "c1", []string{"old"}); err != nil {
		t.Fatalf("RemoveTags: %v", err)
	}
	c, _ := b.srv.Contact("c1")
	if want := []string{"vip", "course two"}; !slices.Equal(c.Tags, want) {
		t.Errorf("tags = %q, want %q", c.Tags, want)
	}
	before := len(b.srv.Requests())
	if err := b.client.AddTags(ctx, "c1", []string{" ", ""}); err != nil {
		t.Errorf("AddTags with only blanks: %v", err)
	}
	if len(b.srv.Requests()) != before {
		t.Error("AddTags with only blank tags sent a request")
	}
	if err := b.client.AddTags(ctx, "missing", []string{"x"}); !errors.Is(err, highlevel.ErrNotFound) {
		t.Errorf("AddTags on an unknown contact: %v, want ErrNotFound", err)
	}
}

func TestInvalidContactIDsSendNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []string{"", " ", ".", ".."} {
		if _, err := b.client.Contact(ctx, id); err == nil {
			t.Errorf("Contact(%q): no error", id)
		}
		if err := b.client.UpdateCustomFields(ctx, id, []highlevel.FieldWrite{{ID: "f", Value: 1}}); err == nil {
			t.Errorf("UpdateCustomFields(%q): no error", id)
		}
	}
	if n := len(b.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid ids", n)
	}

	// A slash is escaped, so it stays inside the path segment.
	_, err := b.client.Contact(ctx, "a/../../locations")
	if !errors.Is(err, highlevel.ErrNotFound) {
		t.Errorf("Contact with a slash: %v, want ErrNotFound", err)
	}
	reqs := b.srv.Requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/contacts/a/../../locations" || reqs[0].Status != http.StatusNotFound {
		t.Errorf("requests = %+v, want one GET of the escaped id answered 404", reqs)
	}
}
