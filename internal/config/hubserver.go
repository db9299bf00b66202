package config

import "strings"

// HubServer configures this gateway's role as a hub for edge devices
// (toml [hub_server]); every gateway with [auth] mode "required" is one.
// Read once at start; a change needs a restart. See docs/hub.md.
type HubServer struct {
	// EKRoots is a PEM bundle of TPM manufacturers' CA certificates (toml
	// "ek_roots"; a relative path is resolved against the config file's
	// directory). When set, a TPM device enrolls only with an endorsement
	// key certificate that chains to one of them and certifies the EK its
	// credential activation used. "" trusts a TPM's EK on first use, so a
	// device made entirely in software can enroll as a TPM device. The
	// file is read at start: `mcpedge serve` refuses to start when it is
	// unreadable or holds no root certificate.
	EKRoots string
}

var hubServerKeys = []string{"ek_roots"}

// decodeHubServer reads the [hub_server] table, if any, into c.HubServer
// and returns it (nil when absent) for validateHubServer's positions.
func (d *decoder) decodeHubServer(top *table, c *Config) *table {
	t := d.subTable(top, "hub_server")
	if t == nil {
		return nil
	}
	t.str("ek_roots", &c.HubServer.EKRoots)
	t.unknown(hubServerKeys)
	return t
}

// validateHubServer checks [hub_server] and makes ek_roots absolute.
// The file's content is checked when the hub starts (devicekey parses
// it), so that this package does not depend on the TPM code.
func (d *decoder) validateHubServer(c *Config, t *table) {
	h := &c.HubServer
	if t == nil || h.EKRoots == "" {
		return
	}
	if strings.ContainsRune(h.EKRoots, 0) {
		l := metaLoc(t, "hub_server", "ek_roots")
		d.add(l.pos, l.field, "must not contain NUL bytes")
		return
	}
	if d.base != "" {
		h.EKRoots = resolvePath(d.base, h.EKRoots)
	}
}
