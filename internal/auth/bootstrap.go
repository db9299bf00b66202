package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// ErrSetUpBefore is returned by Bootstrap for a store that has no tenant
// left although it was set up before (its audit log has entries): every
// tenant was removed, by hand or through an old version. Creating a new
// owner key silently would hand the gateway to whoever reads the next
// command's output; Recover does it on purpose.
var ErrSetUpBefore = errors.New("the store was set up before but has no tenant left")

// FirstStart is what Bootstrap (or Recover) made.
type FirstStart struct {
	Tenant, User string
	// Key is the generated owner API key; empty when it came from
	// KeyEnv.
	Key    string
	KeyEnv string
	// PasswordSet: the owner user's password came from PasswordEnv.
	PasswordSet bool
	PasswordEnv string
}

// WriteNotice tells the operator what the first start made. With
// keyFile set the generated key is not in the notice: it says the key is
// in that file (see WriteKeyFile).
func (f *FirstStart) WriteNotice(out io.Writer, keyFile string) {
	switch {
	case f.Key == "":
		fmt.Fprintf(out, "\nmcpedge: first start: created tenant %q with owner user %q and an owner API key from $%s.\n", f.Tenant, f.User, f.KeyEnv)
	case keyFile != "":
		fmt.Fprintf(out, "\nmcpedge: first start: created tenant %q with owner user %q and an owner API key.\n", f.Tenant, f.User)
		fmt.Fprintf(out, "The API key is in %s (mode 0600, readable by you only); move it somewhere safe and delete the file.\n\n", keyFile)
	default:
		fmt.Fprintf(out, "\nmcpedge: first start: created tenant %q with owner user %q and an owner API key.\n", f.Tenant, f.User)
		fmt.Fprintf(out, "This API key is shown only now; store it somewhere safe:\n\n%s\n\n", f.Key)
	}
	if !f.PasswordSet {
		fmt.Fprintf(out, "User %q has no password, so it can not log in yet; set one through the admin API (or set $%s before the first start).\n\n", f.User, f.PasswordEnv)
	}
}

// WriteKeyFile writes the generated key, alone on its line, to path
// with mode 0600; an existing file is not overwritten.
func (f *FirstStart) WriteKeyFile(path string) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the owner API key: %w", err)
	}
	_, err = fmt.Fprintln(fh, f.Key)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the owner API key to %s: %w", path, err)
	}
	return nil
}

// Bootstrap prepares an empty store (see FirstStartOn) and writes what it
// made to out (nil: nowhere). It reports whether it did the work.
func (s *Service) Bootstrap(ctx context.Context, out io.Writer) (bool, error) {
	f, err := s.FirstStartOn(ctx)
	if err != nil || f == nil {
		return false, err
	}
	if out != nil {
		f.WriteNotice(out, "")
	}
	return true, nil
}

// FirstStartOn prepares an empty store (no tenant yet) for its first use:
// it creates the tenant Config.BootstrapTenant (an operator tenant on
// the "enterprise" plan), a virtual server "all" with every upstream, an
// owner user "owner" and an owner API key "bootstrap", and audits
// "store.bootstrap". It returns nil when the store has tenants.
//
// The user's password comes from the environment variable named by
// Config.BootstrapPasswordEnv; without it the user has no password and
// can not log in until one is set. The key comes from
// Config.BootstrapKeyEnv (see ImportKey); without it a key is generated
// and returned, once: it is never shown again.
//
// A store without tenants whose audit log has entries was set up before:
// FirstStartOn returns ErrSetUpBefore (wrapped, with how to recover)
// rather than make a new owner key. It is safe when several processes
// start at once on one store: creating the tenant decides the winner,
// the others see ErrConflict and return nil.
func (s *Service) FirstStartOn(ctx context.Context) (*FirstStart, error) {
	return s.setUp(ctx, false)
}

// Recover sets up a store that was set up before and has no tenant left
// (ErrSetUpBefore) as FirstStartOn sets up an empty one; the audit entry
// says so. It refuses a store that has tenants.
func (s *Service) Recover(ctx context.Context) (*FirstStart, error) {
	f, err := s.setUp(ctx, true)
	if err == nil && f == nil {
		return nil, errors.New("the store has tenants: there is nothing to recover (administer it with the owner key, or create one with mcpedge key create --tenant NAME --role owner)")
	}
	return f, err
}

func (s *Service) setUp(ctx context.Context, again bool) (*FirstStart, error) {
	n, err := s.st.CountTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: bootstrap: %w", err)
	}
	if n > 0 {
		return nil, nil
	}
	seq, _, err := s.st.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: bootstrap: %w", err)
	}
	if seq > 0 && !again {
		return nil, fmt.Errorf("%w (its audit log has %d entries), so no one can administer it; mcpedge does not make a new owner key by itself. "+
			"To set it up again on purpose, run: mcpedge bootstrap --config FILE (docs/cli.md, \"Recovering a store\")", ErrSetUpBefore, seq)
	}
	// Check the environment before creating anything, so that a bad value
	// does not leave a half-made tenant behind.
	var pwHash, keySecret string
	if name := s.cfg().BootstrapPasswordEnv; name != "" {
		if pw := s.getenv(name); pw != "" {
			if pwHash, err = HashPassword(pw); err != nil {
				return nil, fmt.Errorf("auth: bootstrap: $%s: %w", name, err)
			}
		}
	}
	if name := s.cfg().BootstrapKeyEnv; name != "" {
		keySecret = s.getenv(name)
		if keySecret != "" && len(keySecret) < MinImportedKeyLen {
			return nil, fmt.Errorf("auth: bootstrap: $%s must be at least %d characters", name, MinImportedKeyLen)
		}
	}

	t := &store.Tenant{Name: s.cfg().BootstrapTenant, Plan: "enterprise", Operator: true}
	if err := s.st.CreateTenant(ctx, t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil // another process is bootstrapping
		}
		return nil, fmt.Errorf("auth: bootstrap: creating tenant: %w", err)
	}
	if err := s.st.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: t.ID, Name: "all", Upstreams: []string{"*"}}); err != nil {
		return nil, fmt.Errorf("auth: bootstrap: creating virtual server: %w", err)
	}
	u := &store.User{TenantID: t.ID, Name: config.DefaultBootstrapUserName, Role: principal.RoleOwner, PasswordHash: pwHash}
	if err := s.st.CreateUser(ctx, u); err != nil {
		return nil, fmt.Errorf("auth: bootstrap: creating user: %w", err)
	}
	k := &store.APIKey{TenantID: t.ID, Name: "bootstrap", Role: principal.RoleOwner}
	generated := keySecret == ""
	if generated {
		keySecret, err = s.CreateKey(ctx, k, 0)
	} else {
		err = s.ImportKey(ctx, k, keySecret)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: bootstrap: creating key: %w", err)
	}
	s.log.Info("auth: bootstrapped an empty store", "tenant", t.Name, "user", u.Name, "key_prefix", k.Prefix, "key_from_env", !generated, "password_set", pwHash != "", "again", again)
	s.emit(ctx, &store.AuditEntry{TenantID: t.ID, Actor: "system", ActorKind: "system", Action: "store.bootstrap", Target: "tenant:" + t.ID, Outcome: outcomeOK},
		map[string]any{"tenant": t.Name, "user": u.Name, "key_prefix": k.Prefix, "again": again})
	f := &FirstStart{Tenant: t.Name, User: u.Name, KeyEnv: s.cfg().BootstrapKeyEnv, PasswordSet: pwHash != "", PasswordEnv: s.cfg().BootstrapPasswordEnv}
	if generated {
		f.Key = keySecret
	}
	return f, nil
}
