//go:build !windows

package devicekey

import (
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// openDevice opens a TPM character device (/dev/tpmrm0, /dev/tpm0).
func openDevice(path string) (transport.TPMCloser, error) { return linuxtpm.Open(path) }
