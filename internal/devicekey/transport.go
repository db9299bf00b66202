package devicekey

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Timeouts for a TPM reached over TCP (a software TPM). A real TPM is a
// character device and answers or fails on its own; a socket might never
// answer, and a device must not hang at start because of it.
const (
	dialTimeout = 5 * time.Second
	// cmdTimeout bounds one command: key generation on a loaded machine
	// takes well under a second on swtpm.
	cmdTimeout = 30 * time.Second
	// maxResponse bounds a response's size; TPM responses are at most a
	// few KiB (TPM_PT_MAX_RESPONSE_SIZE is 4096 on common TPMs).
	maxResponse = 64 << 10
	// headerSize is a TPM response header: tag (2), size (4), code (4).
	headerSize = 10
)

// openTransport opens a TPM: a device path through the kernel, or
// tcp://host:port, the raw command port of swtpm in socket mode.
func openTransport(dev string) (transport.TPMCloser, error) {
	if !strings.HasPrefix(dev, "tcp://") {
		t, err := openDevice(dev)
		if err != nil {
			return nil, fmt.Errorf("devicekey: open TPM %s: %w", dev, err)
		}
		return t, nil
	}
	u, err := url.Parse(dev)
	if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("devicekey: TPM address %q: want tcp://HOST:PORT", dev)
	}
	s := &streamTPM{addr: u.Host}
	// Fail at open, not at the first command, when nothing listens.
	conn, err := net.DialTimeout("tcp", s.addr, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("devicekey: connect to TPM %s: %w", dev, err)
	}
	conn.Close()
	return s, nil
}

// streamTPM sends TPM commands over swtpm's socket interface: the
// command as it is, and the response read back as its header says, since
// a stream may deliver it in pieces. go-tpm's io.ReadWriter wrapper reads
// once and suits only device files, and its tcp transport speaks the
// Microsoft simulator's protocol, not swtpm's.
//
// swtpm serves one connection at a time and has no resource manager:
// loaded objects outlive connections. So each command gets its own
// connection, and several users in one process (a device key and a
// sealed master key) take turns by command instead of the second waiting
// for the first to close.
type streamTPM struct {
	addr string

	mu     sync.Mutex
	closed bool
}

func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("devicekey: TPM connection is closed")
	}
	conn, err := net.DialTimeout("tcp", s.addr, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("devicekey: connect to TPM tcp://%s: %w", s.addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(cmdTimeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("devicekey: send TPM command: %w", err)
	}
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return nil, fmt.Errorf("devicekey: read TPM response: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponse {
		return nil, fmt.Errorf("devicekey: TPM response claims %d bytes, want %d..%d", size, headerSize, maxResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(conn, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("devicekey: read TPM response: %w", err)
	}
	return rsp, nil
}

func (s *streamTPM) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
