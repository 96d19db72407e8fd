package highlevel_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current parser")

// TestWorkflowWebhookGolden parses each testdata/workflow_webhook*.json and
// compares the result with its .golden.json. Run with -update after an
// intended change and review the diff.
func TestWorkflowWebhookGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "workflow_webhook*.json"))
	if err != nil {
		t.Fatal(err)
	}
	inputs = slices.DeleteFunc(inputs, func(p string) bool { return strings.HasSuffix(p, ".golden.json") })
	if len(inputs) == 0 {
		t.Fatal("no fixtures in testdata")
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			w, err := highlevel.ParseWorkflowWebhook(body)
			if err != nil {
				t.Fatalf("ParseWorkflowWebhook: %v", err)
			}
			got, err := json.MarshalIndent(w, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed %s differs from %s:\n%s", in, golden, got)
			}
		})
	}
}

func TestParseWorkflowWebhookFixture(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("testdata", "workflow_webhook.json"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := highlevel.ParseWorkflowWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	if w.ContactID != "ocQHyuzHvysMo5N5VsXc" || w.Contact.ID != w.ContactID {
		t.Errorf("ContactID = %q, Contact.ID = %q", w.ContactID, w.Contact.ID)
	}
	if w.LocationID != "ve9EPM428h8vShlRW1KT" || w.Contact.LocationID != w.LocationID {
		t.Errorf("LocationID = %q, Contact.LocationID = %q", w.LocationID, w.Contact.LocationID)
	}
	if w.WorkflowID != "6a1f0d2c-8e37-4b5a-9d6e-2f4c1b7a9e30" || w.WorkflowName != "Sync to WordPress" {
		t.Errorf("workflow = %q %q", w.WorkflowID, w.WorkflowName)
	}
	standard := map[string]string{
		"firstName": "Ann", "lastName": "Lee", "name": "Ann Lee", "email": "ann.lee@example.com",
		"phone": "+15555550100", "companyName": "Acme Learning", "address1": "1 Main St",
		"city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US",
		"timezone": "America/Chicago", "dateOfBirth": "1990-01-31T00:00:00.000Z",
		"dateAdded": "2026-08-04T14:53:09.703Z", "type": "lead", "source": "web form",
		"tags": "vip, course two",
	}
	for name, want := range standard {
		if got, _ := w.Contact.Standard(name); got != want {
			t.Errorf("Standard(%q) = %q, want %q", name, got, want)
		}
	}
	if want := map[string]string{"wp_role": "subscriber", "course": "course-two"}; !reflect.DeepEqual(w.CustomData, want) {
		t.Errorf("CustomData = %v, want %v", w.CustomData, want)
	}
	if want := map[string]any{"Course Level": "advanced", "WordPress User ID": "1234"}; !reflect.DeepEqual(w.Extra, want) {
		t.Errorf("Extra = %v, want %v (envelope keys such as contact, attributionSource, full_address are not custom fields)", w.Extra, want)
	}
	for key, want := range map[string]string{
		"wp_role": "subscriber", "course": "course-two",
		"Course Level": "advanced", "course_level": "advanced", "contact.course_level": "advanced",
		"wordpress_user_id": "1234",
	} {
		if got, ok := w.Contact.Custom(key); !ok || got != want {
			t.Errorf("Contact.Custom(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

func TestParseWorkflowWebhookTags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"comma-separated string", `{"tags":"vip,course two"}`, []string{"vip", "course two"}},
		{"spaces and empties", `{"tags":" vip , ,course two,, "}`, []string{"vip", "course two"}},
		{"case kept", `{"tags":"VIP,Course Two"}`, []string{"VIP", "Course Two"}},
		{"array", `{"tags":["vip"," course two ",""]}`, []string{"vip", "course two"}},
		{"array with junk", `{"tags":["a",1,null,{"x":1},["y"]]}`, []string{"a", "1"}},
		{"empty string", `{"tags":""}`, []string{}},
		{"only commas", `{"tags":", ,"}`, []string{}},
		{"null", `{"tags":null}`, nil},
		{"absent", `{}`, nil},
		{"number", `{"tags":5}`, nil},
	}
	for _, tt := range tests {
		w, err := highlevel.ParseWorkflowWebhook([]byte(tt.body))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !slices.Equal(w.Contact.Tags, tt.want) {
			t.Errorf("%s: tags = %q, want %q", tt.name, w.Contact.Tags, tt.want)
		}
		if _, isExtra := w.Extra["tags"]; isExtra {
			t.Errorf("%s: tags landed in Extra", tt.name)
		}
	}
}

func TestParseWorkflowWebhookCustomDataAndExtra(t *testing.T) {
	t.Parallel()
	w, err := highlevel.ParseWorkflowWebhook([]byte(`{
		"contact_id":"c1",
		"customData":{"b":"2","a":1.50,"list":["x","y"],"nil":null,"obj":{"k":"v"}},
		"Zeta Field":"z","Alpha Field":["p","q"],"Count":7,
		"triggerData":{"x":1},"workflow":{"id":"w"},"location":{"id":"l"},"user":{"id":"u"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	wantData := map[string]string{"a": "1.5", "b": "2", "list": "x, y", "nil": "", "obj": `{"k":"v"}`}
	if !reflect.DeepEqual(w.CustomData, wantData) {
		t.Errorf("CustomData = %q, want %q", w.CustomData, wantData)
	}
	wantExtra := map[string]any{"Zeta Field": "z", "Alpha Field": []string{"p", "q"}, "Count": float64(7)}
	if !reflect.DeepEqual(w.Extra, wantExtra) {
		t.Errorf("Extra = %#v, want %#v", w.Extra, wantExtra)
	}
	var keys []string
	for _, f := range w.Contact.CustomFields {
		if f.ID != "" {
			t.Errorf("payload custom field %q has an id %q", f.Key, f.ID)
		}
		keys = append(keys, f.Key)
	}
	wantKeys := []string{"a", "b", "list", "nil", "obj", "Alpha Field", "Count", "Zeta Field"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("custom field keys = %q, want customData first, then extras, each sorted: %q", keys, wantKeys)
	}
	for key, want := range map[string]string{"alpha_field": "p, q", "count": "7", "list": "x, y", "a": "1.5"} {
		if got, ok := w.Contact.Custom(key); !ok || got != want {
			t.Errorf("Custom(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

func TestParseWorkflowWebhookLenientTypes(t *testing.T) {
	t.Parallel()
	w, err := highlevel.ParseWorkflowWebhook([]byte(`{"contact_id":12345,"first_name":null,"last_name":" Lee ","postal_code":10115,"location":"not an object","workflow":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if w.ContactID != "12345" || w.Contact.FirstName != "" || w.Contact.LastName != "Lee" || w.Contact.PostalCode != "10115" {
		t.Errorf("contact = %+v", w.Contact)
	}
	if w.LocationID != "" || w.WorkflowID != "" {
		t.Errorf("location %q workflow %q from non-objects", w.LocationID, w.WorkflowID)
	}
	if !w.ContactIDNotString {
		t.Error("ContactIDNotString = false for a numeric contact_id")
	}
	for _, body := range []string{`{"contact_id":"abc"}`, `{"contact_id":null}`, `{"email":"a@example.com"}`} {
		if w, err := highlevel.ParseWorkflowWebhook([]byte(body)); err != nil || w.ContactIDNotString {
			t.Errorf("ParseWorkflowWebhook(%s): ContactIDNotString = true or error %v", body, err)
		}
	}
}

// TestParseWorkflowWebhookStrings checks that strings read without the
// decoder (those without escapes) read as the decoder reads them, and those
// with escapes, control characters or invalid UTF-8 still do.
func TestParseWorkflowWebhookStrings(t *testing.T) {
	t.Parallel()
	for _, v := range []string{`"Ann"`, `" Ann "`, `"Zoë ✓"`, `"a\"b"`, `"line\nbreak"`, `"\u00e9t\u00e9"`, "\"bad \xff utf8\"", `""`, `"a,b, c"`} {
		body := `{"first_name":` + v + `,"tags":` + v + `,"Custom Field":` + v + `}`
		w, err := highlevel.ParseWorkflowWebhook([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var want string
		if err := json.Unmarshal([]byte(v), &want); err != nil {
			t.Fatal(err)
		}
		if w.Contact.FirstName != strings.TrimSpace(want) {
			t.Errorf("%s: first name %q, want %q", v, w.Contact.FirstName, strings.TrimSpace(want))
		}
		if got := w.Extra["Custom Field"]; got != want {
			t.Errorf("%s: custom field %q, want %q", v, got, want)
		}
		var tags []string
		for _, tag := range strings.Split(want, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				tags = append(tags, tag)
			}
		}
		if !slices.Equal(w.Contact.Tags, tags) && !(len(tags) == 0 && len(w.Contact.Tags) == 0) {
			t.Errorf("%s: tags %q, want %q", v, w.Contact.Tags, tags)
		}
	}
}

func TestParseWorkflowWebhookEmptyAndInvalid(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "   ", "\n\t"} {
		w, err := highlevel.ParseWorkflowWebhook([]byte(body))
		if err != nil || w == nil || !reflect.DeepEqual(*w, highlevel.WorkflowWebhook{}) {
			t.Errorf("ParseWorkflowWebhook(%q) = %+v, %v; want an empty webhook", body, w, err)
		}
	}
	invalid := []struct {
		body, wantDetail string
	}{
		{`{"contact_id":`, "malformed JSON"},
		{`{"contact_id":"c1"} trailing`, "malformed JSON"},
		{`contact_id=c1&email=a%40b.c`, "malformed JSON"},
		{`[{"contact_id":"c1"}]`, "want an object"},
		{`"just a string"`, "want an object"},
		{`42`, "want an object"},
		{`null`, "want a JSON object"},
		{"\xff\xfe{}", "malformed JSON"},
	}
	for _, tt := range invalid {
		w, err := highlevel.ParseWorkflowWebhook([]byte(tt.body))
		if !errors.Is(err, highlevel.ErrInvalidPayload) || w != nil {
			t.Errorf("ParseWorkflowWebhook(%q) = %v, %v; want nil, ErrInvalidPayload", tt.body, w, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantDetail) {
			t.Errorf("ParseWorkflowWebhook(%q) error %q, want it to say %q", tt.body, err, tt.wantDetail)
		}
		if highlevel.Retryable(err) {
			t.Errorf("invalid payload is retryable")
		}
	}
	// The error must not echo the body: it may carry personal data.
	_, err := highlevel.ParseWorkflowWebhook([]byte(`{"email":"private@example.com",`))
	if err == nil || strings.Contains(err.Error(), "private@example.com") {
		t.Errorf("error %v echoes the body", err)
	}
}

// FuzzParseWorkflowWebhook checks that no input panics and that the result
// keeps its invariants. Run:
//
//	go test ./highlevel -run '^$' -fuzz FuzzParseWorkflowWebhook -fuzztime 2m -fuzzminimizetime 2s
//
// (minimising JSON inputs with the default 60s budget stalls the fuzzer on
// a busy machine).
func FuzzParseWorkflowWebhook(f *testing.F) {
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "workflow_webhook*.json"))
	for _, p := range fixtures {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{"", "{}", "null", "[]", `{"tags":"a,,b"}`, `{"tags":[1,{}]}`, `{"customData":{"a":[{}]}}`, `{"location":{"id":7}}`, `{"a":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want map[string]json.RawMessage
		wantOK := json.Unmarshal(body, &want) == nil && want != nil
		got, ok := highlevel.ObjectMembers(body)
		if ok != wantOK || ok && !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("objectMembers = %q, %v; encoding/json %q, %v", got, ok, want, wantOK)
		}
		w, err := highlevel.ParseWorkflowWebhook(body)
		if err != nil {
			if !errors.Is(err, highlevel.ErrInvalidPayload) {
				t.Fatalf("error %v does not match ErrInvalidPayload", err)
			}
			if w != nil {
				t.Fatal("non-nil webhook with an error")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(body, &obj) == nil && obj != nil {
				t.Fatalf("valid JSON object rejected: %v", err)
			}
			return
		}
		if w == nil {
			t.Fatal("nil webhook without an error")
		}
		if w.ContactID != w.Contact.ID || w.LocationID != w.Contact.LocationID {
			t.Fatalf("ids disagree: %+v", w)
		}
		for _, tag := range w.Contact.Tags {
			if tag == "" || strings.TrimSpace(tag) != tag {
				t.Fatalf("untrimmed or empty tag %q", tag)
			}
		}
		if len(w.Contact.CustomFields) != len(w.CustomData)+len(w.Extra) {
			t.Fatalf("%d custom fields for %d customData + %d extra", len(w.Contact.CustomFields), len(w.CustomData), len(w.Extra))
		}
		for k := range w.Extra {
			if k == "" || strings.TrimSpace(k) != k {
				continue // Custom trims its argument
			}
			if _, ok := w.Contact.Custom(k); !ok {
				t.Fatalf("Extra key %q not found by Custom", k)
			}
		}
		if _, err := json.Marshal(w); err != nil {
			t.Fatalf("webhook does not marshal: %v", err)
		}
		contactJSON, err := w.Contact.MarshalJSON() // as the queue stores it
		if err != nil {
			t.Fatalf("contact does not marshal: %v", err)
		}
		if want, _ := highlevel.MarshalViaMap(w.Contact); !bytes.Equal(contactJSON, want) {
			t.Fatalf("contact marshals as\n%s\nwant\n%s", contactJSON, want)
		}
	})
}
