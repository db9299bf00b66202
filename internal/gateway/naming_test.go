package gateway

import (
	"strings"
	"testing"
)

func TestNamespacedName(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct {
		name, prefix, item, want string
	}{
		{"default prefix", "everything", "echo", "everything__echo"},
		{"empty prefix keeps name", "", "echo", "echo"},
		{"dots and dashes allowed", "fs", "read-file.v2", "fs__read-file.v2"},
		{"invalid chars replaced and hashed", "fs", "read file", "fs__read_file_" + shortHash("fs__read file")},
		{"long name shortened", "up", long, ("up__" + long)[:MaxNameLen-9] + "_" + shortHash("up__"+long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NamespacedName(tt.prefix, tt.item); got != tt.want {
				t.Errorf("NamespacedName(%q, %q) = %q, want %q", tt.prefix, tt.item, got, tt.want)
			}
		})
	}
}

func TestNamespacedNameDistinguishesLongNames(t *testing.T) {
	a := NamespacedName("up", strings.Repeat("a", 70)+"1")
	b := NamespacedName("up", strings.Repeat("a", 70)+"2")
	if a == b {
		t.Fatalf("two different long names shortened to the same %q", a)
	}
	if len(a) > MaxNameLen || len(b) > MaxNameLen {
		t.Fatalf("shortened names too long: %d, %d", len(a), len(b))
	}
}

func FuzzNamespacedName(f *testing.F) {
	f.Add("everything", "echo")
	f.Add("", "")
	f.Add("a", strings.Repeat("é", 50))
	f.Add("up", "name with spaces/and:colons")
	f.Fuzz(func(t *testing.T, prefix, name string) {
		got := NamespacedName(prefix, name)
		if got == "" || len(got) > MaxNameLen {
			t.Fatalf("NamespacedName(%q, %q) = %q: length %d out of range", prefix, name, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			if !validNameByte(got[i]) {
				t.Fatalf("NamespacedName(%q, %q) = %q has invalid byte %q", prefix, name, got, got[i])
			}
		}
		if NamespacedName(prefix, name) != got {
			t.Fatal("not deterministic")
		}
	})
}

// TestNamespacedNameLongHashesFullName: a long name is shortened with the
// hash of the full name, not of the sanitised one, so two long names that
// sanitise alike ("a/b" and "a:b" both become "a_b") still differ.
func TestNamespacedNameLongHashesFullName(t *testing.T) {
	head := strings.Repeat("a", 70)
	a := NamespacedName("up", head+"/x")
	b := NamespacedName("up", head+":x")
	if a == b {
		t.Fatalf("%q and %q both shortened to %q", head+"/x", head+":x", a)
	}
	if want := ("up__" + head)[:MaxNameLen-9] + "_" + shortHash("up__"+head+"/x"); a != want {
		t.Errorf("NamespacedName = %q, want %q (the hash of the full name)", a, want)
	}
	// The same for a name that fits once sanitised but has no room left
	// for the hash.
	mid := strings.Repeat("m", MaxNameLen-4-4)
	c, d := NamespacedName("up", mid+"/x"), NamespacedName("up", mid+":x")
	if c == d || len(c) > MaxNameLen {
		t.Errorf("%q and %q shortened to %q and %q", mid+"/x", mid+":x", c, d)
	}
}
