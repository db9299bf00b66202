package sealbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// memStore is a Store in memory, shared by the boxes of one test like a
// database shared by processes.
type memStore struct {
	mu       sync.Mutex
	keys     map[uint32]KeyRecord
	reserves int
}

func newMemStore() *memStore { return &memStore{keys: map[uint32]KeyRecord{}} }

func (m *memStore) Keys(ctx context.Context) ([]KeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []KeyRecord
	for _, k := range m.keys {
		out = append(out, k)
	}
	return out, nil
}

func (m *memStore) AddKey(ctx context.Context, k KeyRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.ID]; ok {
		return ErrKeyExists
	}
	m.keys[k.ID] = k
	return nil
}

func (m *memStore) Reserve(ctx context.Context, id uint32, n uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return 0, fmt.Errorf("no key %d", id)
	}
	before := k.Used
	k.Used += n
	m.keys[id] = k
	m.reserves++
	return before, nil
}

func keyFile(t *testing.T) KeySource {
	t.Helper()
	return FileKey(filepath.Join(t.TempDir(), "queue.key"))
}

func newBox(t *testing.T, src KeySource, st Store, opts *Options) *Box {
	t.Helper()
	b, err := New(context.Background(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Attach(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	b := newBox(t, keyFile(t), newMemStore(), nil)
	ad := AD{Tenant: "acme", Record: "q1/arguments"}
	for _, msg := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("payload "), 10000)} {
		ct, err := b.Seal(ctx, ad, msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != len(msg)+Overhead {
			t.Errorf("len(ciphertext) = %d, want %d", len(ct), len(msg)+Overhead)
		}
		if len(msg) > 8 && bytes.Contains(ct, msg[:8]) {
			t.Error("plaintext visible in the ciphertext")
		}
		pt, err := b.Open(ctx, ad, ct)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt, msg) {
			t.Errorf("Open = %q, want %q", pt, msg)
		}
	}
	a, _ := b.Seal(ctx, ad, []byte("same"))
	c, _ := b.Seal(ctx, ad, []byte("same"))
	if bytes.Equal(a, c) {
		t.Error("two seals of the same message are equal (nonce reused?)")
	}
}

func TestWrongADFails(t *testing.T) {
	ctx := context.Background()
	b := newBox(t, keyFile(t), newMemStore(), nil)
	ct, err := b.Seal(ctx, AD{Tenant: "acme", Record: "q1"}, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range []AD{
		{Tenant: "other", Record: "q1"},
		{Tenant: "acme", Record: "q2"},
		{Tenant: "", Record: "q1"},
		{Tenant: "acmeq", Record: "1"}, // the same bytes run together
		{Tenant: "acme", Record: "q1/result"},
	} {
		if _, err := b.Open(ctx, ad, ct); !errors.Is(err, ErrOpen) {
			t.Errorf("Open with %+v: err = %v, want ErrOpen", ad, err)
		}
	}
}

func TestTamperedFails(t *testing.T) {
	ctx := context.Background()
	b := newBox(t, keyFile(t), newMemStore(), nil)
	ad := AD{Tenant: "acme", Record: "q1"}
	ct, err := b.Seal(ctx, ad, []byte("a secret message"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := b.Open(ctx, ad, bad); err == nil {
			t.Errorf("byte %d flipped: Open succeeded", i)
		}
	}
	if _, err := b.Open(ctx, ad, ct[:len(ct)-1]); err == nil {
		t.Error("truncated ciphertext opened")
	}
	if _, err := b.Open(ctx, ad, ct[:Overhead-1]); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short ciphertext: %v", err)
	}
	if _, err := b.Open(ctx, ad, append(bytes.Clone(ct), 0)); err == nil {
		t.Error("extended ciphertext opened")
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	src, st := keyFile(t), newMemStore()
	b := newBox(t, src, st, nil)
	ad := AD{Tenant: "t", Record: "r"}
	old, _ := b.Seal(ctx, ad, []byte("old"))
	if id, _ := KeyID(old); id != 1 {
		t.Fatalf("first key id = %d, want 1", id)
	}
	id, err := b.Rotate(ctx)
	if err != nil || id != 2 || b.ActiveKey() != 2 {
		t.Fatalf("Rotate = %d, %v; active %d", id, err, b.ActiveKey())
	}
	cur, _ := b.Seal(ctx, ad, []byte("new"))
	if id, _ := KeyID(cur); id != 2 {
		t.Errorf("seal after rotation used key %d, want 2", id)
	}
	if !b.Stale(old) || b.Stale(cur) {
		t.Errorf("Stale(old) = %v, Stale(new) = %v", b.Stale(old), b.Stale(cur))
	}
	for _, ct := range [][]byte{old, cur} {
		if _, err := b.Open(ctx, ad, ct); err != nil {
			t.Errorf("open after rotation: %v", err)
		}
	}

	// Another process, holding the ring from before the rotation, learns
	// of key 3 when it meets a ciphertext of it.
	other := newBox(t, src, st, nil)
	if other.ActiveKey() != 2 {
		t.Errorf("second box active key = %d, want 2", other.ActiveKey())
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	k3, _ := b.Seal(ctx, ad, []byte("three"))
	if pt, err := other.Open(ctx, ad, k3); err != nil || string(pt) != "three" {
		t.Errorf("other box opening key 3: %q, %v", pt, err)
	}
	if other.ActiveKey() != 3 {
		t.Errorf("other box did not switch to key 3 (active %d)", other.ActiveKey())
	}
	// Both rotate at once: the ids stay distinct.
	var wg sync.WaitGroup
	ids := make([]uint32, 2)
	for i, bx := range []*Box{b, other} {
		wg.Go(func() {
			id, err := bx.Rotate(ctx)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if ids[0] == ids[1] {
		t.Errorf("concurrent rotations both made key %d", ids[0])
	}
	if len(st.keys) != 5 {
		t.Errorf("ring has %d keys, want 5", len(st.keys))
	}
	bogus := bytes.Clone(k3)
	bogus[4] = 99
	if _, err := b.Open(ctx, ad, bogus); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key id: %v", err)
	}
}

func TestCounterLimit(t *testing.T) {
	ctx := context.Background()
	src, st := keyFile(t), newMemStore()
	opts := &Options{MaxMessages: 10, Reserve: 3}
	b := newBox(t, src, st, opts)
	ad := AD{Tenant: "t", Record: "r"}
	for i := range 5 {
		if _, err := b.Seal(ctx, ad, []byte("m")); err != nil {
			t.Fatalf("seal %d: %v", i, err)
		}
	}
	// A restart loses the rest of the reserved block (message 6): the
	// count errs on the safe side.
	b = newBox(t, src, st, opts)
	n := 0
	var err error
	for ; n < 20; n++ {
		if _, err = b.Seal(ctx, ad, []byte("m")); err != nil {
			break
		}
	}
	if n != 4 || !errors.Is(err, ErrKeyExhausted) {
		t.Fatalf("after restart sealed %d more, then %v; want 4 then ErrKeyExhausted", n, err)
	}
	if !strings.Contains(err.Error(), "rotate") {
		t.Errorf("error does not ask for rotation: %v", err)
	}
	reserves := st.reserves
	if _, err := b.Seal(ctx, ad, []byte("m")); !errors.Is(err, ErrKeyExhausted) {
		t.Errorf("seal after exhaustion: %v", err)
	}
	if st.reserves != reserves {
		t.Error("an exhausted key still reserves in the store")
	}
	if ks := b.Keys(); len(ks) != 1 || ks[0].Used < 10 || !ks[0].Active {
		t.Errorf("Keys = %+v", ks)
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seal(ctx, ad, []byte("m")); err != nil {
		t.Errorf("seal after rotation: %v", err)
	}
	if _, err := New(ctx, src, &Options{MaxMessages: 1 << 32}); err == nil {
		t.Error("MaxMessages 2^32 accepted")
	}
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	newBox(t, keyFile(t), st, nil)
	b, err := New(ctx, keyFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Attach(ctx, st)
	if err == nil || !strings.Contains(err.Error(), "is not the one key 1 was made with") {
		t.Fatalf("Attach with another master key: %v", err)
	}
	if _, err := b.Seal(ctx, AD{}, nil); !errors.Is(err, ErrNotAttached) {
		t.Errorf("Seal on a box that failed to attach: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "queue.key")
	k1, err := FileKey(path).MasterKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeySize {
		t.Errorf("key file mode %v size %d, want 0600 and %d", st.Mode().Perm(), st.Size(), KeySize)
	}
	k2, err := FileKey(path).MasterKey(ctx)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second read differs: %v", err)
	}
	if bytes.Equal(k1, make([]byte, KeySize)) {
		t.Error("key is all zeros")
	}

	// Creating at once from many goroutines gives one key.
	racy := filepath.Join(t.TempDir(), "race.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := FileKey(racy).MasterKey(ctx)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("racing creators got different keys")
		}
	}
}

func TestBadKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"short":  make([]byte, 16),
		"long":   make([]byte, 33),
		"empty":  nil,
		"base64": []byte(base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(ctx, FileKey(path), nil)
		want := fmt.Sprintf("holds %d bytes, want exactly 32", len(content))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want it to name the file and say %q", name, err, want)
		}
		if name == "base64" && !strings.Contains(err.Error(), "base64") {
			t.Errorf("base64 text in the key file: no hint in %v", err)
		}
	}
	if _, err := New(ctx, FileKey(filepath.Join(dir, "short", "x")), nil); err == nil {
		t.Error("key file under a regular file: no error")
	}
}

func TestEnvKey(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, 32)
	for name, tc := range map[string]struct {
		value string
		err   string
	}{
		"std":     {base64.StdEncoding.EncodeToString(key) + "\n", ""},
		"raw url": {base64.RawURLEncoding.EncodeToString(key), ""},
		"unset":   {"", "is not set"},
		"short":   {base64.StdEncoding.EncodeToString(key[:31]), "decodes to 31 bytes, want 32"},
		"garbage": {"not base64!", "is not base64"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("SEALBOX_TEST_KEY", tc.value)
			got, err := EnvKey("SEALBOX_TEST_KEY").MasterKey(ctx)
			if tc.err == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Errorf("got %x, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "SEALBOX_TEST_KEY") {
				t.Errorf("err = %v, want %q naming the variable", err, tc.err)
			}
		})
	}
	t.Setenv("SEALBOX_TEST_KEY", base64.StdEncoding.EncodeToString(key))
	b := newBox(t, EnvKey("SEALBOX_TEST_KEY"), newMemStore(), nil)
	if _, err := b.Seal(ctx, AD{}, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSeals(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	b := newBox(t, keyFile(t), st, &Options{Reserve: 7})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ad := AD{Tenant: "t", Record: fmt.Sprint(g)}
			for range 100 {
				ct, err := b.Seal(ctx, ad, []byte("m"))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := b.Open(ctx, ad, ct); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if used := st.keys[1].Used; used < 800 || used > 800+7 {
		t.Errorf("store counts %d messages for 800 seals", used)
	}
}
