package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal (no salt?)")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterz": false, "": false} {
		ok, err := VerifyPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	if ok, err := VerifyPassword(h, strings.Repeat("x", MaxPasswordLen+1)); ok || err != nil {
		t.Errorf("over-long password: %v, %v", ok, err)
	}
}

func TestHashPasswordMinimumLength(t *testing.T) {
	t.Parallel()
	if _, err := HashPassword("elevenchars"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("11 characters: %v, want ErrInvalid", err)
	}
	if _, err := HashPassword("ééééééééééé"); !errors.Is(err, ErrInvalid) { // 11 characters, 22 bytes
		t.Fatalf("11 two-byte characters: %v, want ErrInvalid", err)
	}
	if _, err := HashPassword("twelve chars"); err != nil {
		t.Fatalf("12 characters: %v", err)
	}
	if _, err := HashPassword(strings.Repeat("x", MaxPasswordLen+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("too long: %v", err)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	good, _ := HashPassword("correct horse battery")
	f := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"version":       strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   strings.Join([]string{"", f[1], f[2], "m=4194304,t=1,p=1", f[4], f[5]}, "$"),
		"huge time":     strings.Join([]string{"", f[1], f[2], "m=64,t=1000,p=1", f[4], f[5]}, "$"),
		"zero threads":  strings.Join([]string{"", f[1], f[2], "m=64,t=1,p=0", f[4], f[5]}, "$"),
		"params suffix": strings.Join([]string{"", f[1], f[2], "m=64,t=1,p=1,x=2", f[4], f[5]}, "$"),
		"bad salt":      strings.Join([]string{"", f[1], f[2], f[3], "!!", f[5]}, "$"),
		"short hash":    strings.Join([]string{"", f[1], f[2], f[3], f[4], "AAAA"}, "$"),
		"extra field":   good + "$x",
	} {
		if ok, err := VerifyPassword(h, "correct horse battery"); ok || err == nil {
			t.Errorf("%s: VerifyPassword = %v, %v; want an error", name, ok, err)
		}
	}
}

// TestPasswordProductionParams checks the documented parameters and that
// a hash made with them verifies.
func TestPasswordProductionParams(t *testing.T) {
	t.Parallel()
	if want := (argonParams{memory: 19456, time: 2, threads: 1, saltLen: 16, keyLen: 32}); productionArgon != want {
		t.Fatalf("production parameters %+v; the documented ones are %+v", productionArgon, want)
	}
	h, err := hashWith(productionArgon, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if ok, err := VerifyPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("VerifyPassword = %v, %v", ok, err)
	}
}
