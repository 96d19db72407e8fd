package bridge

import (
	"slices"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	add := &Request{Action: ActionAdd, ContactID: "c", SendNotification: true, Role: "customer"}
	upd := &Request{Action: ActionUpdate, ContactID: "c"}
	tags := &Request{Action: ActionUpdateTags, ContactID: "c", Role: "member"}
	updRole := &Request{Action: ActionUpdate, ContactID: "c", Role: "member"}
	addBare := &Request{Action: ActionAdd, ContactID: "c"}
	del := &Request{Action: ActionDeactivate, ContactID: "c"}
	cases := []struct {
		name   string
		a, b   *Request
		action Action
		notify bool
		role   string
	}{
		{"add absorbs update", add, upd, ActionAdd, true, "customer"},
		{"update then add", upd, add, ActionAdd, true, "customer"},
		{"later role wins", add, updRole, ActionAdd, true, "member"},
		// update_tags never changes roles: its role= is not carried.
		{"update absorbs update_tags without its role", upd, tags, ActionUpdate, false, ""},
		{"add keeps its role over a later update_tags", add, tags, ActionAdd, true, "customer"},
		{"update_tags's role is not carried into a later add", tags, addBare, ActionAdd, false, ""},
		{"a deactivation after an update wins", updRole, del, ActionDeactivate, false, "member"},
		{"a deactivation after an add wins", add, del, ActionDeactivate, true, "customer"},
		{"an update after a deactivation does not undo it", del, updRole, ActionDeactivate, false, "member"},
		{"an update_tags after a deactivation does not undo it", del, tags, ActionDeactivate, false, ""},
		{"an add after a deactivation wins", del, add, ActionAdd, true, "customer"},
		{"nil earlier", nil, updRole, ActionUpdate, false, "member"},
		{"nil later", add, nil, ActionAdd, true, "customer"},
	}
	for _, tc := range cases {
		m := Merge(tc.a, tc.b)
		if m.Action != tc.action || m.SendNotification != tc.notify || m.Role != tc.role {
			t.Errorf("%s: got %+v", tc.name, m)
		}
	}
	if add.Action != ActionAdd || upd.Action != ActionUpdate {
		t.Error("Merge changed its inputs")
	}
}

// Merged payloads: the later one wins field by field, what it left out
// keeps the earlier value, and its password (if any) wins.
func TestMergePayloads(t *testing.T) {
	t.Parallel()
	a := &Request{Action: ActionAdd, ContactID: "c", Password: "first", Contact: &highlevel.Contact{ID: "c",
		FirstName: "Ann", Tags: []string{"alpha"}, Carried: []string{"firstName", "tags"}}}
	b := &Request{Action: ActionUpdateTags, ContactID: "c", Contact: &highlevel.Contact{ID: "c",
		Tags: []string{"beta"}, Carried: []string{"tags"}}}
	m := Merge(a, b)
	if m.Contact.FirstName != "Ann" || !slices.Equal(m.Contact.Tags, []string{"beta"}) || m.Password != "first" {
		t.Errorf("merged = %+v, contact %+v", m, m.Contact)
	}
	if !slices.Equal(a.Contact.Tags, []string{"alpha"}) {
		t.Error("Merge changed the earlier contact")
	}
	if m := Merge(m, &Request{Action: ActionAdd, ContactID: "c", Password: "second"}); m.Password != "second" || m.Contact.FirstName != "Ann" {
		t.Errorf("later password: %+v", m)
	}
}

// TakePayload moves the password field's value out of the contact and
// drops password-like fields, but keeps those the field map reads.
func TestTakePayload(t *testing.T) {
	t.Parallel()
	fm, err := ParseFieldMap("meta:api_token=custom:api_token")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(Config{DefaultRole: "subscriber", TagsMetaKey: "t", ContactIDMetaKey: "c",
		PasswordField: "contact.portal_password", FieldMap: fm}, newFakeUsers(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := highlevel.Contact{ID: "c1", CustomFields: []highlevel.CustomFieldValue{
		{Key: "Portal Password", Value: " s3cret "}, {Key: "old_pwd", Value: "x"}, {Key: "api_token", Value: "mapped"}, {Key: "plan", Value: "gold"},
	}}
	var req Request
	s.TakePayload(&req, c)
	var keys []string
	for _, f := range req.Contact.CustomFields {
		keys = append(keys, f.Key)
	}
	if req.Password != "s3cret" || !slices.Equal(keys, []string{"api_token", "plan"}) {
		t.Errorf("password %q, kept fields %v; want s3cret and [api_token plan]", req.Password, keys)
	}
	if len(c.CustomFields) != 4 {
		t.Error("TakePayload changed the caller's contact")
	}
}
