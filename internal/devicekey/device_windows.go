//go:build windows

package devicekey

import (
	"errors"

	"github.com/google/go-tpm/tpm2/transport"
)

// openDevice: TPM device paths are a Linux interface; on Windows only a
// software TPM over tcp:// is supported.
func openDevice(path string) (transport.TPMCloser, error) {
	return nil, errors.New("TPM device paths are supported on Linux only; use tpm = \"off\" or a tcp:// software TPM")
}
