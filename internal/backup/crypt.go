package backup

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// The outer layer of a backup file (docs/design/backup.md):
//
//	magic (16 bytes) | header length (2 bytes, big-endian) | header (JSON)
//	chunk*: ciphertext length (4 bytes, big-endian) | AES-256-GCM ciphertext
//
// The header is plaintext but authenticated: it is the additional data of
// every chunk. The data key is HKDF-SHA256 of the key (the store's master
// key or a backup key) with the header's random salt, so every backup has
// a key of its own and chunk nonces can be counters: 11 bytes of chunk
// number and one byte that is 1 on the last chunk only. A file cut after
// any chunk therefore lacks its last chunk and is refused; chunks can not
// be reordered, dropped or moved into another backup.

// Magic starts every backup file.
const Magic = "MCPEDGE-BACKUP\r\n"

// FormatVersion is the version of the file format this binary writes and
// reads.
const FormatVersion = 1

// KeySize is the size of a backup key and of a store's master key.
const KeySize = 32

const (
	cipherName    = "AES-256-GCM-STREAM"
	chunkSize     = 64 << 10
	tagSize       = 16
	saltSize      = 32
	checkSize     = 16
	maxHeaderSize = 4096
	infoData      = "mcpedge-backup-v1 data key"
	infoCheck     = "mcpedge-backup-v1 key check"
)

// Key kinds, in the header: which key a backup was encrypted with.
const (
	// KeyStore is the store's master key (the default).
	KeyStore = "store-master-key"
	// KeyBackup is a key given for backups ([backup] key_file,
	// $MCPEDGE_BACKUP_KEY or --key-file).
	KeyBackup = "backup-key"
)

// A Key encrypts and decrypts backups.
type Key struct {
	// Bytes are the 32 key bytes.
	Bytes []byte
	// Kind is KeyStore or KeyBackup.
	Kind string
	// Source says where it came from, for messages ("key file
	// /var/lib/mcpedge/store.key").
	Source string
}

// Errors of reading a backup file; test with errors.Is.
var (
	// ErrNotBackup: the file does not start like a backup file.
	ErrNotBackup = errors.New("not an mcpedge backup file")
	// ErrWrongKey: the key is not the one the backup was made with.
	ErrWrongKey = errors.New("wrong key")
	// ErrCorrupt: the file was changed, cut short or damaged.
	ErrCorrupt = errors.New("the backup file is damaged or was tampered with")
)

// header is the plaintext, authenticated header.
type header struct {
	Format int    `json:"format"`
	Cipher string `json:"cipher"`
	Key    string `json:"key"`
	Salt   []byte `json:"salt"`
	Check  []byte `json:"check"`
	Chunk  int    `json:"chunk"`
}

func derive(key, salt []byte, info string, n int) []byte {
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.New(sha256.New, key, salt, []byte(info)), out); err != nil {
		panic(err) // hkdf gives up to 255*32 bytes
	}
	return out
}

func newAEAD(key, salt []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(key, salt, infoData, KeySize))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func nonce(n uint64, last bool) []byte {
	var b [12]byte
	binary.BigEndian.PutUint64(b[3:11], n)
	if last {
		b[11] = 1
	}
	return b[:]
}

// encWriter encrypts what is written to it in chunks; Close writes the
// last chunk (it must be called for the file to be readable).
type encWriter struct {
	w    io.Writer
	aead cipher.AEAD
	ad   []byte
	buf  []byte
	n    uint64
	done bool
}

func newEncWriter(w io.Writer, k Key) (*encWriter, error) {
	if len(k.Bytes) != KeySize {
		return nil, fmt.Errorf("the backup key must be %d bytes, got %d", KeySize, len(k.Bytes))
	}
	h := header{Format: FormatVersion, Cipher: cipherName, Key: k.Kind, Salt: make([]byte, saltSize), Chunk: chunkSize}
	rand.Read(h.Salt)
	h.Check = derive(k.Bytes, h.Salt, infoCheck, checkSize)
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var pre bytes.Buffer
	pre.WriteString(Magic)
	pre.Write(binary.BigEndian.AppendUint16(nil, uint16(len(hb))))
	pre.Write(hb)
	if _, err := w.Write(pre.Bytes()); err != nil {
		return nil, err
	}
	aead, err := newAEAD(k.Bytes, h.Salt)
	if err != nil {
		return nil, err
	}
	return &encWriter{w: w, aead: aead, ad: pre.Bytes(), buf: make([]byte, 0, chunkSize)}, nil
}

func (e *encWriter) Write(p []byte) (int, error) {
	if e.done {
		return 0, errors.New("backup: write after close")
	}
	n := 0
	for len(p) > 0 {
		if len(e.buf) == chunkSize {
			if err := e.flush(false); err != nil {
				return n, err
			}
		}
		m := copy(e.buf[len(e.buf):chunkSize], p)
		e.buf = e.buf[:len(e.buf)+m]
		p = p[m:]
		n += m
	}
	return n, nil
}

func (e *encWriter) flush(last bool) error {
	ct := e.aead.Seal(nil, nonce(e.n, last), e.buf, e.ad)
	e.n++
	e.buf = e.buf[:0]
	if _, err := e.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(ct)))); err != nil {
		return err
	}
	_, err := e.w.Write(ct)
	return err
}

// Close writes the last chunk.
func (e *encWriter) Close() error {
	if e.done {
		return nil
	}
	e.done = true
	return e.flush(true)
}

// decReader decrypts a backup file; it returns ErrCorrupt (wrapped) for
// a chunk that does not authenticate, a file cut short or data after the
// last chunk.
type decReader struct {
	r    io.Reader
	aead cipher.AEAD
	ad   []byte
	buf  []byte // decrypted, not yet read
	ct   []byte
	n    uint64
	last bool // the last chunk was read
	err  error
}

// KeyKind reads the header of a backup file and says which kind of key
// it was encrypted with, without a key.
func readHeader(r io.Reader) (header, []byte, error) {
	var h header
	pre := make([]byte, len(Magic)+2)
	if _, err := io.ReadFull(r, pre); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, nil, fmt.Errorf("%w (shorter than its header)", ErrNotBackup)
		}
		return h, nil, err
	}
	if string(pre[:len(Magic)]) != Magic {
		return h, nil, ErrNotBackup
	}
	n := int(binary.BigEndian.Uint16(pre[len(Magic):]))
	if n == 0 || n > maxHeaderSize {
		return h, nil, fmt.Errorf("%w: a header of %d bytes", ErrCorrupt, n)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, nil, fmt.Errorf("%w: the header is cut short", ErrCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, fmt.Errorf("%w: the header does not parse: %v", ErrCorrupt, err)
	}
	if h.Format != FormatVersion {
		return h, nil, fmt.Errorf("backup file format %d: this mcpedge reads format %d only (a newer mcpedge made it?)", h.Format, FormatVersion)
	}
	if h.Cipher != cipherName || h.Chunk != chunkSize || len(h.Salt) != saltSize || len(h.Check) != checkSize {
		return h, nil, fmt.Errorf("%w: the header names cipher %q, chunk %d", ErrCorrupt, h.Cipher, h.Chunk)
	}
	if h.Key != KeyStore && h.Key != KeyBackup {
		return h, nil, fmt.Errorf("%w: unknown key kind %q", ErrCorrupt, h.Key)
	}
	return h, append(pre, hb...), nil
}

func newDecReader(r io.Reader, k Key) (*decReader, error) {
	h, ad, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	if len(k.Bytes) != KeySize {
		return nil, fmt.Errorf("the backup key must be %d bytes, got %d", KeySize, len(k.Bytes))
	}
	if subtle.ConstantTimeCompare(derive(k.Bytes, h.Salt, infoCheck, checkSize), h.Check) != 1 {
		return nil, wrongKey(h.Key, k)
	}
	aead, err := newAEAD(k.Bytes, h.Salt)
	if err != nil {
		return nil, err
	}
	return &decReader{r: r, aead: aead, ad: ad, ct: make([]byte, 0, chunkSize+tagSize)}, nil
}

func wrongKey(kind string, k Key) error {
	what := "the store's master key"
	if kind == KeyBackup {
		what = "a backup key ([backup] key_file, $MCPEDGE_BACKUP_KEY or --key-file)"
	}
	return fmt.Errorf("%w: this backup was encrypted with %s, and the key from %s is not that key", ErrWrongKey, what, k.Source)
}

func (d *decReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.last {
			// Nothing may follow the last chunk.
			var one [1]byte
			if n, _ := io.ReadFull(d.r, one[:]); n > 0 {
				d.err = fmt.Errorf("%w: data after the end", ErrCorrupt)
				return 0, d.err
			}
			d.err = io.EOF
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *decReader) next() error {
	var lb [4]byte
	if _, err := io.ReadFull(d.r, lb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the file is cut short (chunk %d missing)", ErrCorrupt, d.n)
		}
		return err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n < tagSize || n > chunkSize+tagSize {
		return fmt.Errorf("%w: chunk %d has a length of %d", ErrCorrupt, d.n, n)
	}
	d.ct = d.ct[:n]
	if _, err := io.ReadFull(d.r, d.ct); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the file is cut short (in chunk %d)", ErrCorrupt, d.n)
		}
		return err
	}
	// A chunk is the last one if it opens as the last one.
	pt, err := d.aead.Open(d.ct[:0:0], nonce(d.n, false), d.ct, d.ad)
	if err != nil {
		if pt, err = d.aead.Open(d.ct[:0:0], nonce(d.n, true), d.ct, d.ad); err != nil {
			return fmt.Errorf("%w: chunk %d does not authenticate", ErrCorrupt, d.n)
		}
		d.last = true
	} else if len(pt) != chunkSize {
		// Only the last chunk may be short.
		return fmt.Errorf("%w: chunk %d is short", ErrCorrupt, d.n)
	}
	d.n++
	d.buf = pt
	return nil
}
