package admin

import (
	"context"
	"errors"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// UserSpec is a new user (POST /api/tenants/{tenant}/users).
type UserSpec struct {
	Name string `json:"name"`
	// Role defaults to member.
	Role string `json:"role,omitempty"`
	// Password, if set, lets the user log in at /api/auth/login; without
	// one the user can not log in with a password.
	Password string `json:"password,omitempty"`
}

// UserPatch changes a user; nil fields stay as they are. A new password,
// disabling or a lower role ends the user's sessions.
type UserPatch struct {
	Role     *string `json:"role,omitempty"`
	Password *string `json:"password,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
}

// ListUsers lists a tenant's users by name.
func (o *Ops) ListUsers(ctx context.Context, tenantRef string) (_ []store.User, err error) {
	c := o.beginRead(ctx, "user.list")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	return o.st.ListUsers(ctx, t.ID)
}

// CreateUser adds a user to a tenant. Only owners create owners.
func (o *Ops) CreateUser(ctx context.Context, tenantRef string, s UserSpec) (_ *store.User, err error) {
	c := o.begin(ctx, "user.create")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	c.target = "user:" + clip(s.Name)
	if s.Role == "" {
		s.Role = principal.RoleMember
	}
	if err := validName("user", s.Name); err != nil {
		return nil, err
	}
	if err := validRole(s.Role); err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["role"] = s.Name, s.Role
	if err := c.mayGrantRole(s.Role); err != nil {
		return nil, err
	}
	u := &store.User{TenantID: t.ID, Name: s.Name, Role: s.Role}
	if s.Password != "" {
		if err := c.maySetPassword(); err != nil {
			return nil, err
		}
		if err := validPassword(s.Password); err != nil {
			return nil, err
		}
		if u.PasswordHash, err = o.hash(s.Password); err != nil {
			return nil, err
		}
		c.detail["password"] = true
	}
	if err := o.st.CreateUser(ctx, u); err != nil {
		return nil, storeErr(err, "user \""+s.Name+"\"")
	}
	c.target = "user:" + u.ID
	return u, nil
}

// UpdateUser changes a user's role, password or disabled flag. Only owners
// change owners or make someone an owner; the store refuses to leave a
// tenant without an owner (409 last_owner).
func (o *Ops) UpdateUser(ctx context.Context, tenantRef, userRef string, patch UserPatch) (_ *store.User, err error) {
	c := o.begin(ctx, "user.update")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	u, err := o.lookupUser(c, t.ID, userRef)
	if err != nil {
		return nil, err
	}
	if patch.Role == nil && patch.Password == nil && patch.Disabled == nil {
		return nil, invalid("nothing to change: give role, password or disabled")
	}
	if u.Role == principal.RoleOwner {
		if err := c.needOwner("change owners"); err != nil {
			return nil, err
		}
	}
	var changed []string
	endSessions := false
	if patch.Role != nil && *patch.Role != u.Role {
		if err := validRole(*patch.Role); err != nil {
			return nil, err
		}
		if err := c.mayGrantRole(*patch.Role); err != nil {
			return nil, err
		}
		endSessions = principal.RoleRank(*patch.Role) < principal.RoleRank(u.Role)
		c.detail["from_role"], c.detail["role"] = u.Role, *patch.Role
		u.Role = *patch.Role
		changed = append(changed, "role")
	}
	if patch.Password != nil {
		if err := c.maySetPassword(); err != nil {
			return nil, err
		}
		if err := validPassword(*patch.Password); err != nil {
			return nil, err
		}
		if u.PasswordHash, err = o.hash(*patch.Password); err != nil {
			return nil, err
		}
		endSessions = true
		changed = append(changed, "password")
	}
	if patch.Disabled != nil && *patch.Disabled != u.Disabled {
		u.Disabled = *patch.Disabled
		endSessions = endSessions || u.Disabled
		c.detail["disabled"] = u.Disabled
		changed = append(changed, "disabled")
	}
	c.detail["changed"] = nonNil(changed)
	if len(changed) == 0 {
		return u, nil
	}
	if err := o.st.UpdateUser(ctx, u); err != nil {
		return nil, storeErr(err, "user \""+clip(userRef)+"\"")
	}
	if endSessions {
		c.detail["sessions_revoked"] = true
		if err := o.creds.RevokeUser(ctx, t.ID, u.ID); err != nil {
			return nil, &Error{Code: CodeInternal, Message: "the user was updated, but ending their sessions failed; retry the request", Err: err}
		}
	}
	return u, nil
}

// DeleteUser removes a user and ends their sessions. Only owners remove
// owners; the last owner can not be removed.
func (o *Ops) DeleteUser(ctx context.Context, tenantRef, userRef string) (err error) {
	c := o.begin(ctx, "user.delete")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return err
	}
	u, err := o.lookupUser(c, t.ID, userRef)
	if err != nil {
		return err
	}
	c.detail["name"], c.detail["role"] = u.Name, u.Role
	if u.Role == principal.RoleOwner {
		if err := c.needOwner("remove owners"); err != nil {
			return err
		}
	}
	// Sessions are ended after the delete, so that a refused delete (the
	// last owner) leaves them alone. The store records a "user"
	// revocation that every replica follows; the user record is gone, so
	// the credential service (which looks the user up) is not asked.
	if err := o.st.DeleteUser(ctx, t.ID, u.ID); err != nil {
		return storeErr(err, "user \""+clip(userRef)+"\"")
	}
	c.detail["sessions_revoked"] = true
	if err := o.st.RevokeUserSessions(ctx, u.ID, o.now()); err != nil {
		return &Error{Code: CodeInternal, Message: "the user was removed, but ending their sessions failed; their access tokens stop working when they expire", Err: err}
	}
	return nil
}

// mayGrantRole: nobody grants a role above their own, and only owners
// grant owner.
func (c *call) mayGrantRole(role string) error {
	if role == principal.RoleOwner {
		return c.needOwner("create or promote owners")
	}
	if principal.RoleRank(role) > principal.RoleRank(c.p.Role) {
		return c.forbid("you can not grant role %s, which is above your own (%s)", role, c.p.Role)
	}
	return nil
}

// maySetPassword: a password lets someone sign in to a session that is not
// limited to scopes, so a caller whose credential is limited to scopes may
// not set one (as it may only hand out keys limited to its own scopes).
func (c *call) maySetPassword() error {
	if len(c.p.Scopes) > 0 {
		return c.forbid("your credential is limited to scopes %v, so it can not set passwords: a signed-in user is not limited to scopes", c.p.Scopes)
	}
	return nil
}

// lookupUser finds a user of the tenant by id, then by name.
func (o *Ops) lookupUser(c *call, tenantID, ref string) (*store.User, error) {
	c.target = "user:" + clip(ref)
	u, err := o.st.GetUser(c.ctx, tenantID, ref)
	if errors.Is(err, store.ErrNotFound) {
		u, err = o.st.GetUserByName(c.ctx, tenantID, ref)
	}
	if err != nil {
		return nil, storeErr(err, "user \""+clip(ref)+"\"")
	}
	c.target = "user:" + u.ID
	return u, nil
}
