package bridge

import (
	"strings"
	"testing"
)

func TestParseRoleRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"gold=gold_member, silver = silver_member", "gold=gold_member silver=silver_member", ""},
		{"gold", "", "TAG=ROLE"},
		{"=x", "", "TAG=ROLE"},
		{"gold=a,GOLD=b", "", "has a rule already"},
	}
	for _, tc := range cases {
		rules, err := ParseRoleRules(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRoleRules(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		var got []string
		for _, r := range rules {
			got = append(got, r.Tag+"="+r.Role)
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("ParseRoleRules(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// The rules may only hand out allowed roles (the default among them).
func TestRoleRulesNeedAllowedRoles(t *testing.T) {
	t.Parallel()
	cfg := Config{DefaultRole: "subscriber", AllowedRoles: []string{"gold_member"}, TagsMetaKey: "t", ContactIDMetaKey: "c"}
	for role, ok := range map[string]bool{"gold_member": true, "subscriber": true, "editor": false, "administrator": false} {
		cfg.RoleRules = []RoleRule{{Tag: "x", Role: role}}
		_, err := NewSyncer(cfg, newFakeUsers(), nil, nil)
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), role)) {
			t.Errorf("a rule giving %s: %v", role, err)
		}
	}
}
