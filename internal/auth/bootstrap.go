package auth

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Bootstrap prepares an empty store (no tenant yet) for its first use:
// it creates the tenant Config.BootstrapTenant (an operator tenant on
// the "enterprise" plan), a virtual server "all" with every upstream, an
// owner user "owner" and an owner API key "bootstrap".
//
// The user's password comes from the environment variable named by
// Config.BootstrapPasswordEnv; without it the user has no password and
// can not log in until one is set. The key comes from
// Config.BootstrapKeyEnv (see ImportKey); without it a key is generated
// and written to out, alone on its line, once: it is never shown again.
//
// Bootstrap reports whether it did the work. It is safe when several
// processes start at once on one store: creating the tenant decides the
// winner, the others see ErrConflict and report false.
func (s *Service) Bootstrap(ctx context.Context, out io.Writer) (bool, error) {
	n, err := s.st.CountTenants(ctx)
	if err != nil {
		return false, fmt.Errorf("auth: bootstrap: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	// Check the environment before creating anything, so that a bad value
	// does not leave a half-made tenant behind.
	var pwHash, keySecret string
	if name := s.cfg().BootstrapPasswordEnv; name != "" {
		if pw := s.getenv(name); pw != "" {
			if pwHash, err = HashPassword(pw); err != nil {
				return false, fmt.Errorf("auth: bootstrap: $%s: %w", name, err)
			}
		}
	}
	if name := s.cfg().BootstrapKeyEnv; name != "" {
		keySecret = s.getenv(name)
		if keySecret != "" && len(keySecret) < MinImportedKeyLen {
			return false, fmt.Errorf("auth: bootstrap: $%s must be at least %d characters", name, MinImportedKeyLen)
		}
	}

	t := &store.Tenant{Name: s.cfg().BootstrapTenant, Plan: "enterprise", Operator: true}
	if err := s.st.CreateTenant(ctx, t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, nil // another process is bootstrapping
		}
		return false, fmt.Errorf("auth: bootstrap: creating tenant: %w", err)
	}
	if err := s.st.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: t.ID, Name: "all", Upstreams: []string{"*"}}); err != nil {
		return false, fmt.Errorf("auth: bootstrap: creating virtual server: %w", err)
	}
	u := &store.User{TenantID: t.ID, Name: config.DefaultBootstrapUserName, Role: principal.RoleOwner, PasswordHash: pwHash}
	if err := s.st.CreateUser(ctx, u); err != nil {
		return false, fmt.Errorf("auth: bootstrap: creating user: %w", err)
	}
	k := &store.APIKey{TenantID: t.ID, Name: "bootstrap", Role: principal.RoleOwner}
	generated := keySecret == ""
	if generated {
		keySecret, err = s.CreateKey(ctx, k, 0)
	} else {
		err = s.ImportKey(ctx, k, keySecret)
	}
	if err != nil {
		return false, fmt.Errorf("auth: bootstrap: creating key: %w", err)
	}
	s.log.Info("auth: bootstrapped an empty store", "tenant", t.Name, "user", u.Name, "key_prefix", k.Prefix, "key_from_env", !generated, "password_set", pwHash != "")
	if out != nil {
		if generated {
			fmt.Fprintf(out, "\nmcpedge: first start: created tenant %q with owner user %q and an owner API key.\n", t.Name, u.Name)
			fmt.Fprintf(out, "This API key is shown only now; store it somewhere safe:\n\n%s\n\n", keySecret)
		} else {
			fmt.Fprintf(out, "\nmcpedge: first start: created tenant %q with owner user %q and an owner API key from $%s.\n", t.Name, u.Name, s.cfg().BootstrapKeyEnv)
		}
		if pwHash == "" {
			fmt.Fprintf(out, "User %q has no password, so it can not log in yet; set one through the admin API (or set $%s before the first start).\n\n", u.Name, s.cfg().BootstrapPasswordEnv)
		}
	}
	return true, nil
}
