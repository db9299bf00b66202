package auth

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/config"
)

// authConf is the [auth] section in force and what is built from it: the
// parser of the gateway's own access tokens and, with [auth.oidc], the
// identity provider's verifier. A Service swaps the whole of it at once
// (Reconfigure), so a request sees one consistent set of settings.
type authConf struct {
	cfg          config.Auth
	accessParser *jwt.Parser
	oidc         *oidcVerifier // nil without [auth.oidc]
}

// cfg returns the [auth] settings in force.
func (s *Service) cfg() *config.Auth { return &s.conf.Load().cfg }

// newConf checks cfg (defaults already applied) and builds what a Service
// needs from it. The OIDC verifier of prev is kept, with its key set, when
// [auth.oidc] did not change.
func (s *Service) newConf(cfg config.Auth, prev *authConf) (*authConf, error) {
	if cfg.OIDC.Issuer != "" && cfg.OIDC.Issuer == cfg.Issuer {
		return nil, fmt.Errorf("auth: the OIDC issuer must differ from the gateway's own issuer %q", cfg.Issuer)
	}
	c := &authConf{cfg: cfg, accessParser: newAccessParser(cfg, s.now)}
	switch {
	case cfg.OIDC.Issuer == "":
	case prev != nil && prev.oidc != nil && reflect.DeepEqual(prev.cfg.OIDC, cfg.OIDC):
		c.oidc = prev.oidc
	default:
		hc := s.hc // a client given in Options (tests), else one per [auth.oidc]
		if hc == nil {
			var err error
			if hc, err = jwksClient(cfg.OIDC.TLS); err != nil {
				return nil, err
			}
		}
		v, err := newOIDCVerifier(cfg.OIDC, hc, s.now, s.log)
		if err != nil {
			return nil, err
		}
		c.oidc = v
	}
	return c, nil
}

// Reconfigure applies a new [auth] section to the running Service, for a
// configuration reload: token lifetimes, the issuer and audience of new
// and accepted access tokens, lockout, key rotation overlap, the
// revocation poll interval and [auth.oidc] (a changed provider gets a new
// verifier, which fetches its key set on first use). A token issued before
// under another issuer or audience is refused from now on, as it would be
// after a restart. Mode and the bootstrap settings are not the Service's:
// mode is read once by the HTTP edge, and the bootstrap settings matter
// only on an empty store (see config.RestartKeys).
//
// On an error nothing changes and the running settings stay.
func (s *Service) Reconfigure(cfg config.Auth) error {
	prev := s.conf.Load()
	next, err := s.newConf(withDefaults(cfg), prev)
	if err != nil {
		return err
	}
	if next.cfg.AccessTTL != prev.cfg.AccessTTL || next.cfg.RefreshTTL != prev.cfg.RefreshTTL {
		s.rev.setLifetimes(next.cfg.AccessTTL.D(), next.cfg.RefreshTTL.D())
	}
	if !s.conf.CompareAndSwap(prev, next) {
		return errors.New("auth: the settings changed during Reconfigure; try again")
	}
	return nil
}
