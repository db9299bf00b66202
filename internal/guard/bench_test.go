package guard

import (
	"strings"
	"testing"
)

// benchTexts are 100 KB of clean English-like ASCII (with the common
// words that hold the redactor's literals: "passed", "key", "token"),
// of clean accented text, and of ASCII with one secret at the end.
func benchTexts() map[string]string {
	const size = 100 << 10
	para := "The quick brown fox jumps over the lazy dog while the build runs; all tests passed in 3.2s, the key step took one token. "
	plain := strings.Repeat(para, size/len(para)+1)[:size]
	return map[string]string{
		"ascii":   plain,
		"unicode": strings.Repeat("Größe naïve café ", size/20+1)[:size-3],
		"secret":  plain[:size-30] + " AKIAIOSFODNN7EXAMPLE",
	}
}

// BenchmarkNormalize and BenchmarkRedact measure the detectors per byte
// of text (docs/guardrails.md, "Cost"); the throughput they print is
// MB/s, so µs per KB = 1000 / (MB/s) × 1.024.
func BenchmarkNormalize(b *testing.B) {
	for name, s := range benchTexts() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				Normalize(s)
			}
		})
	}
}

func BenchmarkRedact(b *testing.B) {
	for _, personal := range []bool{false, true} {
		r := NewRedactor(&RedactOptions{PersonalData: personal})
		for name, s := range benchTexts() {
			if personal {
				name += "-personal"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(s)))
				b.ReportAllocs()
				for b.Loop() {
					r.Redact(s)
				}
			})
		}
	}
}
