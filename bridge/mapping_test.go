package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/mapping")

// mappingCase is one file under testdata/mapping: a HighLevel contact (from
// the API, or a workflow webhook body in payload mode), the bridge's
// settings and a request. Its golden file holds every call the bridge made
// to WordPress and HighLevel, and the result.
type mappingCase struct {
	Config struct {
		FieldMap            string   `json:"field_map"`
		DefaultRole         string   `json:"default_role"`
		AllowedRoles        []string `json:"allowed_roles"`
		UsernameField       string   `json:"username_field"`
		PasswordField       string   `json:"password_field"`
		ReturnPasswordField string   `json:"return_password_field"`
	} `json:"config"`
	Request      Request                   `json:"request"`
	Contact      *highlevel.Contact        `json:"contact"` // API mode
	CustomFields []highlevel.CustomField   `json:"custom_fields"`
	Webhook      json.RawMessage           `json:"webhook"` // payload mode
	Existing     []wordpress.User          `json:"existing_users"`
	ExistingMeta map[string]map[string]any `json:"existing_meta"` // user id -> meta
}

type mappingGolden struct {
	WordPress []recordedCall `json:"wordpress"`
	HighLevel []recordedCall `json:"highlevel,omitempty"`
	Result    *Result        `json:"result,omitempty"`
	Refused   string         `json:"refused,omitempty"`
}

func TestMappingGolden(t *testing.T) {
	files, err := filepath.Glob("../testdata/mapping/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var tc mappingCase
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&tc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got := runMappingCase(t, tc)
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			golden := strings.TrimSuffix(file, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./bridge -run TestMappingGolden -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs from the calls made; got:\n%s", golden, out)
			}
		})
	}
	if n == 0 {
		t.Fatal("no mapping cases found under testdata/mapping")
	}
}

func runMappingCase(t *testing.T, tc mappingCase) mappingGolden {
	t.Helper()
	fm := tc.Config.FieldMap
	if fm == "" {
		fm = DefaultFieldMap
	}
	mappings, err := ParseFieldMap(fm)
	if err != nil {
		t.Fatal(err)
	}
	users := newFakeUsers(tc.Existing...)
	for id, m := range tc.ExistingMeta {
		var uid int64
		if err := json.Unmarshal([]byte(id), &uid); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if list, ok := v.([]any); ok {
				s := make([]string, len(list))
				for i := range list {
					s[i] = list[i].(string)
				}
				users.meta[uid][k] = s
			} else {
				users.meta[uid][k] = v
			}
		}
	}
	var contacts Contacts
	var hl *fakeContacts
	req := tc.Request
	if tc.Webhook != nil {
		wh, err := highlevel.ParseWorkflowWebhook(tc.Webhook)
		if err != nil {
			t.Fatal(err)
		}
		req.Contact = &wh.Contact
		if req.ContactID == "" {
			req.ContactID = wh.ContactID
		}
	} else {
		hl = &fakeContacts{contacts: map[string]highlevel.Contact{}, fields: tc.CustomFields}
		if tc.Contact != nil {
			hl.contacts[tc.Contact.ID] = *tc.Contact
		}
		contacts = hl
	}
	role := tc.Config.DefaultRole
	if role == "" {
		role = "subscriber"
	}
	s, err := NewSyncer(Config{
		DefaultRole: role, AllowedRoles: tc.Config.AllowedRoles,
		UsernameField: tc.Config.UsernameField, PasswordField: tc.Config.PasswordField,
		ReturnPasswordField: tc.Config.ReturnPasswordField, FieldMap: mappings,
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id",
	}, users, contacts, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(t.Context(), req)
	g := mappingGolden{WordPress: users.calls}
	if hl != nil {
		g.HighLevel = hl.writes
	}
	var refused *RefusedError
	switch {
	case err == nil:
		g.Result = &res
	case errors.As(err, &refused):
		g.Refused = refused.Reason
	default:
		t.Fatalf("Apply: %v", err)
	}
	return g
}

func TestParseFieldMap(t *testing.T) {
	t.Parallel()
	good := "first_name=firstName, last_name=lastName,meta:company=companyName,meta:plan=custom:plan_key,url=website"
	m, err := ParseFieldMap(good)
	if err != nil || len(m) != 5 {
		t.Fatalf("ParseFieldMap(%q) = %v, %v", good, m, err)
	}
	if k, ok := m[2].MetaKey(); !ok || k != "company" {
		t.Errorf("meta key = %q %v", k, ok)
	}
	if id, ok := m[3].CustomField(); !ok || id != "plan_key" {
		t.Errorf("custom field = %q %v", id, ok)
	}
	for _, bad := range []string{
		"first_name", "=firstName", "first_name=", "password=firstName", "first_name=fistName",
		"meta:=firstName", "meta:x=custom:", "first_name=firstName,first_name=lastName",
	} {
		if _, err := ParseFieldMap(bad); err == nil {
			t.Errorf("ParseFieldMap(%q) accepted", bad)
		}
	}
}
