package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDeviceParse(t *testing.T) {
	for _, tc := range []struct {
		src  string
		tpm  string
		pcrs []int
	}{
		{"", DeviceTPMAuto, nil},
		{"[device]\n", DeviceTPMAuto, nil},
		{"[device]\ntpm = \"off\"\n", DeviceTPMOff, nil},
		{"[device]\ntpm = \"/dev/tpmrm0\"\npcrs = [7, 0, 23]\n", "/dev/tpmrm0", []int{7, 0, 23}},
		{"[device]\ntpm = \"tcp://127.0.0.1:2321\"\n", "tcp://127.0.0.1:2321", nil},
		{"[device]\ntpm = \"tcp://[::1]:2321\"\n", "tcp://[::1]:2321", nil},
		{"[device]\ntpm = \"tcp://localhost:2321\"\n", "tcp://localhost:2321", nil},
	} {
		c, ps := parseT(t, tc.src, nil)
		if ps != nil {
			t.Errorf("%q: problems %q", tc.src, ps)
			continue
		}
		if c.Device.TPM != tc.tpm || !slices.Equal(c.Device.PCRs, tc.pcrs) {
			t.Errorf("%q: got %+v", tc.src, c.Device)
		}
	}
	mc, err := ParseMCPServers("c.json", []byte(`{"mcpServers": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if mc.Device.TPM != DeviceTPMAuto || mc.Device.PCRs != nil {
		t.Errorf("mcpServers import device: %+v", mc.Device)
	}
}

func TestDeviceProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"types", "[device]\ntpm = 1\npcrs = \"0-7\"\nfoo = 1\n", []string{
			`c.toml:2:1: device.tpm: expected string, got integer`,
			`c.toml:3:1: device.pcrs: expected array of PCR numbers, got string`,
			`c.toml:4:1: device.foo: unknown key`,
		}},
		{"not a table", "device = \"tpm\"\n", []string{`c.toml:1:1: device: expected table ([device]), got string`}},
		{"pcrs", "[device]\npcrs = [0, 24, -1, 0, \"7\"]\n", []string{
			`device.pcrs[1]: PCR 24 is out of range 0..23`,
			`device.pcrs[2]: PCR -1 is out of range 0..23`,
			`device.pcrs[3]: PCR 0 is listed twice`,
			`device.pcrs[4]: expected a PCR number, got string`,
		}},
		{"empty pcrs", "[device]\npcrs = []\n", []string{`c.toml:2:1: device.pcrs: must list at least one PCR`}},
		{"word", "[device]\ntpm = \"yes\"\n", []string{`c.toml:2:1: device.tpm: must be "auto", "off", a device path such as /dev/tpmrm0, or tcp://127.0.0.1:PORT, got "yes"`}},
		{"relative", "[device]\ntpm = \"dev/tpm0\"\n", []string{`c.toml:2:1: device.tpm: must be "auto"`}},
		{"unclean", "[device]\ntpm = \"/dev/../tpm0\"\n", []string{`c.toml:2:1: device.tpm: must be a clean absolute path`}},
		{"remote", "[device]\ntpm = \"tcp://10.0.0.5:2321\"\n", []string{`c.toml:2:1: device.tpm: a TPM over TCP must be on a loopback address`}},
		{"no port", "[device]\ntpm = \"tcp://127.0.0.1\"\n", []string{`c.toml:2:1: device.tpm: must be tcp://127.0.0.1:PORT`}},
		{"path", "[device]\ntpm = \"tcp://127.0.0.1:1/x\"\n", []string{`c.toml:2:1: device.tpm: must be tcp://127.0.0.1:PORT`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := parseT(t, tc.src, nil)
			if len(ps) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(ps), len(tc.want), strings.Join(ps, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(ps[i], w) {
					t.Errorf("problem %d:\n got %s\nwant …%s…", i, ps[i], w)
				}
			}
		})
	}
}
