// Package principal is who is calling: the identity attached to a request
// at the edge of the request path (by the authenticator) and read by every
// later stage (authorization, limits, audit, the built-in services). It is
// a leaf package so that all of them can depend on it.
package principal

import (
	"context"
	"slices"
	"time"
)

// Kinds of principal.
const (
	KindKey         = "key"         // an API key
	KindUser        = "user"        // a user session (access token from /api/auth/login)
	KindOIDC        = "oidc"        // a bearer JWT from the configured identity provider
	KindCertificate = "certificate" // a client certificate verified by mTLS, mapped by [[server.tls.client_certs]]
	KindAnonymous   = "anonymous"   // auth mode "off": the single local user
)

// Roles, weakest first. A role includes every right of the roles before it.
const (
	RoleViewer = "viewer"
	RoleMember = "member"
	RoleAdmin  = "admin"
	RoleOwner  = "owner"
)

// Scopes a key (or token) may be limited to. A credential without scopes
// has every right of its role; one with scopes has only the rights both
// its role and its scopes grant. Other scope strings may be used freely
// in per-tool rules.
const (
	ScopeList       = "mcp:list"    // list tools, prompts, resources
	ScopeCall       = "mcp:call"    // call tools, get prompts, read resources
	ScopeAdminRead  = "admin:read"  // read the admin API
	ScopeAdminWrite = "admin:write" // change things through the admin API
)

// KnownScopes are the scopes with a meaning of their own.
var KnownScopes = []string{ScopeList, ScopeCall, ScopeAdminRead, ScopeAdminWrite}

// RoleRank orders roles: viewer 1 … owner 4, unknown 0.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleMember:
		return 2
	case RoleAdmin:
		return 3
	case RoleOwner:
		return 4
	}
	return 0
}

// ValidRole reports whether role is one of the four roles.
func ValidRole(role string) bool { return RoleRank(role) > 0 }

// Principal is an authenticated caller.
type Principal struct {
	Kind string
	// ID identifies the credential's holder for audit and limits: the key
	// id, the user id, or "oidc:<issuer-sub>".
	ID     string
	UserID string // set for user sessions (and keys tied to a user)
	KeyID  string // set for API keys
	// TenantID and TenantName come from the credential, never from a
	// request header.
	TenantID   string
	TenantName string
	Plan       string
	// Operator tenants administer the whole gateway.
	Operator bool
	Role     string
	Scopes   []string
	// IPAllowlist of the tenant (CIDRs); empty allows all.
	IPAllowlist []string
	// ExpiresAt is when the credential stops being valid (zero: never).
	ExpiresAt time.Time
	// SessionID is the refresh-token family of a user session.
	SessionID string
	// TokenID is the jti of a JWT.
	TokenID string
}

// AtLeast reports whether the principal's role is role or stronger.
func (p *Principal) AtLeast(role string) bool {
	return p != nil && RoleRank(p.Role) >= RoleRank(role) && RoleRank(role) > 0
}

// HasScope reports whether the credential grants scope: true when it is
// not limited to scopes at all, or lists this one.
func (p *Principal) HasScope(scope string) bool {
	if p == nil {
		return false
	}
	return len(p.Scopes) == 0 || slices.Contains(p.Scopes, scope)
}

// Can reports whether the principal may do what needs both the role and,
// for scoped credentials, the scope.
func (p *Principal) Can(role, scope string) bool {
	return p.AtLeast(role) && p.HasScope(scope)
}

// CanList: viewers and up, with mcp:list.
func (p *Principal) CanList() bool {
	return p.Can(RoleViewer, ScopeList) || p.Can(RoleViewer, ScopeCall)
}

// CanCall: members and up, with mcp:call.
func (p *Principal) CanCall() bool { return p.Can(RoleMember, ScopeCall) }

// CanRead covers prompts/get and resources/read: viewers and up, with
// mcp:call or mcp:list (reading has no side effects).
func (p *Principal) CanRead() bool { return p.CanList() }

type ctxKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal in ctx, or nil.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
