package bridge

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Plan answers what Apply then does, and writes nothing to either side.
func TestPlanMatchesApplyAndWritesNothing(t *testing.T) {
	t.Parallel()
	existing := wordpress.User{ID: 7, Username: "bo", Email: "bo@example.com", FirstName: "Bo", Roles: []string{"subscriber"}}
	tests := []struct {
		name    string
		action  Action
		contact highlevel.Contact
		created bool
		refused string
	}{
		{"add creates", ActionAdd, highlevel.Contact{ID: "new1", Email: "ada@example.com", FirstName: "Ada", Tags: []string{"vip"}}, true, ""},
		{"update changes a name", ActionUpdate, highlevel.Contact{ID: "c-bo", Email: "bo@example.com", FirstName: "Bob"}, false, ""},
		{"update without a user is refused", ActionUpdate, highlevel.Contact{ID: "new2", Email: "cy@example.com"}, false, "no WordPress user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			users := newFakeUsers(existing)
			contacts := &fakeContacts{contacts: map[string]highlevel.Contact{tt.contact.ID: tt.contact},
				fields: []highlevel.CustomField{{ID: "f1", FieldKey: "contact.wp_password"}}}
			s, err := NewSyncer(Config{DefaultRole: "subscriber", TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id",
				ReturnPasswordField: "wp_password", FieldMap: []Mapping{{Target: "first_name", Source: "firstName"}}}, users, contacts, nil)
			if err != nil {
				t.Fatal(err)
			}
			req := Request{Action: tt.action, ContactID: tt.contact.ID, SendNotification: true}
			plan, perr := s.Plan(context.Background(), req)
			if writes := writeCalls(users); len(writes) > 0 || len(contacts.writes) > 0 {
				t.Fatalf("Plan wrote: %v %v", writes, contacts.writes)
			}
			viaSearch, serr := s.PlanContact(context.Background(), Request{Action: tt.action, SendNotification: true}, &tt.contact)
			res, aerr := s.Apply(context.Background(), req)
			if tt.refused != "" {
				for _, err := range []error{perr, serr, aerr} {
					if err == nil || !strings.Contains(err.Error(), tt.refused) {
						t.Errorf("error %v, want a refusal with %q", err, tt.refused)
					}
				}
				return
			}
			if perr != nil || serr != nil || aerr != nil {
				t.Fatalf("Plan: %v, PlanContact: %v, Apply: %v", perr, serr, aerr)
			}
			for _, p := range []Result{plan, viaSearch} {
				if p.Created != tt.created || res.Created != tt.created || !slices.Equal(p.Changed, res.Changed) ||
					p.Notified != res.Notified || p.PasswordReturned != res.PasswordReturned {
					t.Errorf("plan %+v, Apply did %+v", p, res)
				}
			}
			if !tt.created && plan.UserID != res.UserID {
				t.Errorf("plan names user %d, Apply changed %d", plan.UserID, res.UserID)
			}
			if len(res.Changed) == 0 {
				t.Errorf("Apply changed nothing: the case proves nothing")
			}
		})
	}
}

// writeCalls are the recorded calls that write.
func writeCalls(f *fakeUsers) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c.Call, "UserBy") && c.Call != "FindUser" {
			out = append(out, c.Call)
		}
	}
	return out
}
