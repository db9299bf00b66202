package main

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devicekey"
)

const deviceUsage = `Device identity commands (each takes --config FILE or --mcp-servers FILE):
  device show [--json]
        Print this device's id, key kind (tpm or file), public key and, for a
        TPM key, the PCR values an attestation would quote. Creates the key
        on first use: in the TPM named by [device] tpm (default "auto":
        /dev/tpmrm0 if present), else in <data_dir>/device.key, sealed with
        $MCPEDGE_DEVICE_KEY (base64 of 32 bytes) if set, else with
        <data_dir>/device-master.key. See docs/device-identity.md.
`

// openDeviceKey opens (creating on first use) the device key the
// configuration describes: [device] tpm and pcrs, in [server] data_dir.
func openDeviceKey(ctx context.Context, cfg *config.Config) (devicekey.Key, error) {
	if cfg.Server.DataDir == "" {
		return nil, errors.New("the device key needs a data directory: set [server] data_dir (no home directory to default to)")
	}
	// Master nil: devicekey.DefaultMaster(data_dir).
	return devicekey.Open(ctx, devicekey.Options{DataDir: cfg.Server.DataDir, TPM: cfg.Device.TPM, PCRs: cfg.Device.PCRs})
}

// deviceInfo is what `device show --json` prints.
type deviceInfo struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// TPM is the TPM the key lives in (kind "tpm").
	TPM string `json:"tpm,omitempty"`
	// KeyFile is the file holding the key (sealed, or TPM blobs).
	KeyFile string `json:"key_file"`
	// PublicKey is the PKIX public key in PEM.
	PublicKey string `json:"public_key"`
	// PCRs are the sha256 PCR values, hex, by index (kind "tpm").
	PCRs map[string]string `json:"pcrs,omitempty"`
}

// cmdDevice runs `mcpedge device …`; args start after "device".
func cmdDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, deviceUsage)
		if len(args) == 0 {
			return usageError{errors.New("device: give a subcommand (see the usage above)")}
		}
		return flag.ErrHelp
	}
	if args[0] != "show" {
		fmt.Fprint(stderr, deviceUsage)
		return usageError{fmt.Errorf("unknown command \"device %s\" (see the usage above)", args[0])}
	}
	flags := flag.NewFlagSet("device show", flag.ContinueOnError)
	flags.SetOutput(stderr)
	src := configFlags(flags)
	asJSON := flags.Bool("json", false, "print JSON instead of text")
	if _, err := parseSubcommand(flags, "mcpedge device show [--json] [--config FILE | --mcp-servers FILE]", args[1:]); err != nil {
		return err
	}
	s, err := src()
	if err != nil {
		return err
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	k, err := openDeviceKey(ctx, cfg)
	if err != nil {
		return err
	}
	defer k.Close()
	info, err := describeKey(k, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, info)
	}
	fmt.Fprintf(stdout, "id:       %s\nkind:     %s\n", info.ID, info.Kind)
	if info.TPM != "" {
		fmt.Fprintf(stdout, "tpm:      %s\n", info.TPM)
	}
	fmt.Fprintf(stdout, "key file: %s\n", info.KeyFile)
	if len(info.PCRs) > 0 {
		fmt.Fprintln(stdout, "pcrs (sha256):")
		idx := make([]int, 0, len(info.PCRs))
		for i := range info.PCRs {
			n, _ := strconv.Atoi(i)
			idx = append(idx, n)
		}
		slices.Sort(idx)
		for _, i := range idx {
			fmt.Fprintf(stdout, "  %2d: %s\n", i, info.PCRs[strconv.Itoa(i)])
		}
	}
	fmt.Fprint(stdout, info.PublicKey)
	return nil
}

func describeKey(k devicekey.Key, cfg *config.Config) (*deviceInfo, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, err
	}
	info := &deviceInfo{
		ID:        k.ID(),
		Kind:      k.Kind(),
		KeyFile:   filepath.Join(cfg.Server.DataDir, devicekey.FileKeyName),
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
	if k.Kind() == devicekey.KindTPM {
		info.KeyFile = filepath.Join(cfg.Server.DataDir, devicekey.TPMKeyName)
		info.TPM = cfg.Device.TPM
		if info.TPM == "" || info.TPM == config.DeviceTPMAuto {
			info.TPM = devicekey.DefaultTPMDevice
		}
		if r, ok := k.(devicekey.PCRReader); ok {
			vals, err := r.PCRs()
			if err != nil {
				return nil, fmt.Errorf("read PCRs: %w", err)
			}
			info.PCRs = make(map[string]string, len(vals))
			for i, v := range vals {
				info.PCRs[strconv.Itoa(i)] = hex.EncodeToString(v)
			}
		}
	}
	return info, nil
}
