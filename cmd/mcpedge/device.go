package main

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devicekey"
)

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

func (a *app) deviceCmd() *cobra.Command {
	var (
		cf     *configFlags
		asJSON bool
	)
	show := &cobra.Command{
		Use:   "show",
		Short: "Print this device's identity key, creating it on first use",
		Long: `Print this device's id, key kind (tpm or file), public key and, for a TPM
key, the PCR values an attestation would quote. Creates the key on first
use: in the TPM named by [device] tpm (default "auto": /dev/tpmrm0 if
present), else in <data_dir>/device.key, sealed with $MCPEDGE_DEVICE_KEY
(base64 of 32 bytes) if set, else with <data_dir>/device-master.key. See
docs/device-identity.md.`,
		Args: posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			_, cfg, err := cf.load()
			if err != nil {
				return err
			}
			ctx, stop := interruptible(c.Context())
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
			if asJSON {
				return cmdline.PrintJSON(a.stdout, info)
			}
			printDevice(a.stdout, info)
			return nil
		},
	}
	cf = addConfigFlags(show)
	jsonFlag(show, &asJSON)
	return group("device", "This device's identity key (docs/device-identity.md)", show)
}

// printDevice prints what device show shows, as text.
func printDevice(w io.Writer, info *deviceInfo) {
	fmt.Fprintf(w, "id:       %s\nkind:     %s\n", info.ID, info.Kind)
	if info.TPM != "" {
		fmt.Fprintf(w, "tpm:      %s\n", info.TPM)
	}
	fmt.Fprintf(w, "key file: %s\n", info.KeyFile)
	if len(info.PCRs) > 0 {
		fmt.Fprintln(w, "pcrs (sha256):")
		idx := make([]int, 0, len(info.PCRs))
		for i := range info.PCRs {
			n, _ := strconv.Atoi(i)
			idx = append(idx, n)
		}
		slices.Sort(idx)
		for _, i := range idx {
			fmt.Fprintf(w, "  %2d: %s\n", i, info.PCRs[strconv.Itoa(i)])
		}
	}
	fmt.Fprint(w, info.PublicKey)
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
