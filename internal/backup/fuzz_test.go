package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store/open"
)

// fuzzKey is the fixed key of the fuzz targets' seeds.
var fuzzKey = Key{Bytes: bytes.Repeat([]byte{7}, KeySize), Kind: KeyStore, Source: "the fuzz key"}

// FuzzVerify reads arbitrary files as backups (a backup file is outside
// input: it comes from disk, another machine, a bucket): never a panic or
// a hang, and every failure is one of the documented errors.
func FuzzVerify(f *testing.F) {
	good := seedBackup(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic))
	f.Add(append([]byte(Magic), 0, 2, '{', '}'))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Verify(context.Background(), bytes.NewReader(b), fuzzKey)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotBackup) && !errors.Is(err, ErrWrongKey) &&
			!bytes.Contains([]byte(err.Error()), []byte("format")) {
			t.Fatalf("undocumented error: %v", err)
		}
	})
}

// FuzzArchive reads arbitrary decrypted archives (what someone with the
// key could have written): the manifest, entry and checksum parsers never
// panic, and refuse with ErrCorrupt.
func FuzzArchive(f *testing.F) {
	good := seedBackup(f)
	dec, err := newDecReader(bytes.NewReader(good), fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	plain, err := io.ReadAll(dec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add(plain[:len(plain)-10])
	f.Add([]byte{0})
	f.Add([]byte("\x0dmanifest.json\x00\x00\x00\x02{}\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := verifyArchive(context.Background(), bytes.NewReader(b))
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("undocumented error: %v", err)
		}
		if err == nil && m.validate() != nil {
			t.Fatalf("an invalid manifest passed: %+v", m)
		}
	})
}

// seedBackup is a small SQLite backup made with fuzzKey.
func seedBackup(f *testing.F) []byte {
	dir := f.TempDir()
	st, err := open.OpenWithKey(context.Background(), "", dir, envKey(fuzzKey.Bytes))
	if err != nil {
		f.Fatal(err)
	}
	st.Close()
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, fuzzKey, Source{DataDir: dir, Version: "fuzz"}); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
