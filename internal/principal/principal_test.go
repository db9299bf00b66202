package principal

import "testing"

// TestRightsByRoleAndScope: what each role may do, without scopes and
// with each combination of the MCP scopes; a scoped credential has only
// what both its role and its scopes grant.
func TestRightsByRoleAndScope(t *testing.T) {
	type rights struct{ list, call, read bool }
	tests := []struct {
		role   string
		scopes []string
		want   rights
	}{
		{RoleOwner, nil, rights{true, true, true}},
		{RoleAdmin, nil, rights{true, true, true}},
		{RoleMember, nil, rights{true, true, true}},
		{RoleViewer, nil, rights{true, false, true}},
		{"", nil, rights{}},
		{"root", nil, rights{}},
		{RoleOwner, []string{ScopeList}, rights{true, false, true}},
		{RoleOwner, []string{ScopeCall}, rights{true, true, true}},
		{RoleOwner, []string{ScopeAdminRead, ScopeAdminWrite}, rights{}},
		{RoleMember, []string{ScopeList}, rights{true, false, true}},
		{RoleMember, []string{ScopeCall}, rights{true, true, true}},
		{RoleMember, []string{ScopeList, ScopeCall}, rights{true, true, true}},
		{RoleMember, []string{"custom"}, rights{}},
		{RoleViewer, []string{ScopeCall}, rights{true, false, true}},
		{RoleViewer, []string{ScopeList}, rights{true, false, true}},
	}
	for _, tt := range tests {
		p := &Principal{Kind: KindKey, ID: "k", TenantID: "t", Role: tt.role, Scopes: tt.scopes}
		got := rights{p.CanList(), p.CanCall(), p.CanRead()}
		if got != tt.want {
			t.Errorf("role %q scopes %v: list/call/read = %+v, want %+v", tt.role, tt.scopes, got, tt.want)
		}
	}
	var nobody *Principal
	if nobody.CanList() || nobody.CanCall() || nobody.CanRead() || nobody.HasScope(ScopeList) || nobody.AtLeast(RoleViewer) {
		t.Error("a nil principal has rights")
	}
}

func TestAtLeast(t *testing.T) {
	roles := []string{RoleViewer, RoleMember, RoleAdmin, RoleOwner}
	for i, have := range roles {
		p := &Principal{Role: have}
		for j, need := range roles {
			if got := p.AtLeast(need); got != (i >= j) {
				t.Errorf("%s.AtLeast(%s) = %v", have, need, got)
			}
		}
		if p.AtLeast("") || p.AtLeast("root") {
			t.Errorf("%s is at least an unknown role", have)
		}
		if !ValidRole(have) {
			t.Errorf("ValidRole(%q) = false", have)
		}
	}
	if (&Principal{Role: "root"}).AtLeast(RoleViewer) || ValidRole("root") || ValidRole("") {
		t.Error("an unknown role counts as a role")
	}
}
