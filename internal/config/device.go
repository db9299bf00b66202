package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Device identity settings (the [device] table): where this gateway's
// device key lives. See docs/device-identity.md.
const (
	// DeviceTPMAuto uses /dev/tpmrm0 when it exists, else a file key.
	DeviceTPMAuto = "auto"
	// DeviceTPMOff always uses a file key.
	DeviceTPMOff = "off"
	// MaxDevicePCR is the highest PCR index (PC-client TPMs have 24).
	MaxDevicePCR = 23
)

// Device configures the device key (toml [device]). These settings are
// read when the key is opened (at start, and by `mcpedge device show`).
type Device struct {
	// TPM is "auto" (the default), "off", the path of a TPM device such
	// as /dev/tpmrm0, or tcp://127.0.0.1:PORT, a software TPM's command
	// port (swtpm socket mode, for tests; loopback only, since the TPM
	// protocol carries no authentication of its own here).
	TPM string
	// PCRs are the PCRs (sha256 bank) an attestation quotes (toml
	// "pcrs"). nil means the default, 0 through 7.
	PCRs []int
}

// DefaultDevice returns the [device] defaults.
func DefaultDevice() Device { return Device{TPM: DeviceTPMAuto} }

var deviceKeys = []string{"tpm", "pcrs"}

// decodeDevice reads the [device] table, if any, into c.Device and
// returns it (nil when absent) for validateDevice's positions.
func (d *decoder) decodeDevice(top *table, c *Config) *table {
	t := d.subTable(top, "device")
	if t == nil {
		return nil
	}
	t.str("tpm", &c.Device.TPM)
	if v := t.get("pcrs"); v != nil {
		if v.kind != kArray {
			t.typeErr("pcrs", v, "array of PCR numbers")
		} else {
			pcrs := make([]int, 0, len(v.arr))
			field := t.loc("pcrs").field
			seen := map[int64]bool{}
			for i, e := range v.arr {
				p := e.pos
				if p.line == 0 {
					p = t.loc("pcrs").pos
				}
				switch {
				case e.kind != kInt:
					d.add(p, indexField(field, i), "expected a PCR number, got %s", d.kindName(e.kind))
				case e.i < 0 || e.i > MaxDevicePCR:
					d.add(p, indexField(field, i), "PCR %d is out of range 0..%d", e.i, MaxDevicePCR)
				case seen[e.i]:
					d.add(p, indexField(field, i), "PCR %d is listed twice", e.i)
				default:
					seen[e.i] = true
					pcrs = append(pcrs, int(e.i))
				}
			}
			if len(v.arr) == 0 {
				l := t.loc("pcrs")
				d.add(l.pos, l.field, "must list at least one PCR (leave pcrs out for the default, 0 through 7)")
			}
			c.Device.PCRs = pcrs
		}
	}
	t.unknown(deviceKeys)
	return t
}

// validateDevice checks c.Device.TPM.
func (d *decoder) validateDevice(c *Config, t *table) {
	if msg := checkDeviceTPM(c.Device.TPM); msg != "" {
		l := metaLoc(t, "device", "tpm")
		d.add(l.pos, l.field, "%s", msg)
	}
}

// checkDeviceTPM returns what is wrong with a [device] tpm value, or "".
func checkDeviceTPM(v string) string {
	switch {
	case v == DeviceTPMAuto || v == DeviceTPMOff:
		return ""
	case strings.ContainsRune(v, 0):
		return "must not contain NUL bytes"
	case strings.HasPrefix(v, "/"):
		if filepath.Clean(v) != v {
			return "must be a clean absolute path such as /dev/tpmrm0, got " + strconv.Quote(v)
		}
		return ""
	case strings.HasPrefix(v, "tcp://"):
		u, err := url.Parse(v)
		if err != nil || u.Port() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "must be tcp://127.0.0.1:PORT, got " + strconv.Quote(v)
		}
		if h := u.Hostname(); h != "localhost" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
				return "a TPM over TCP must be on a loopback address (a software TPM for tests), got " + strconv.Quote(h)
			}
		}
		return ""
	default:
		return `must be "auto", "off", a device path such as /dev/tpmrm0, or tcp://127.0.0.1:PORT, got ` + strconv.Quote(v)
	}
}
