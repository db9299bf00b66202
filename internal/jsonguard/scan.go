package jsonguard

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

const (
	// smallObject is the number of members an object may have before
	// duplicate detection switches from a linear scan to a hash index.
	smallObject = 32
	// Sizes of the stack buffers; beyond them the stacks grow on the heap.
	keyBufLen   = 48  // keys of all open objects
	unescBufLen = 128 // unescaped bytes of the escaped keys of all open objects
)

// keyRef locates the unescaped bytes of one object key: data[off:end] for a
// key without escapes (its raw bytes are its unescaped bytes, as the input is
// valid UTF-8), or unesc[off:end] for a key that had escapes.
// Offsets are 32 bits wide to keep the stack buffers small: Check rejects
// inputs of MaxInputSize bytes or more.
type keyRef struct {
	off, end int32
	fp       uint32 // cheap fingerprint, compared before the bytes
	esc      bool
}

// frame is one open container.
type frame struct {
	keys  int32 // for an object, index in keys of its first key; -1 for an array
	unesc int32 // len(unesc) when the object was opened
	// big is set when the object has more than smallObject keys; then the
	// top of indexes maps the hash of each of its keys to the key's
	// position in the object.
	big bool
}

// scanner holds the read-only state of Check. The mutable stacks live in
// local variables of run: stored through a pointer, the compiler would move
// their stack-allocated backing arrays to the heap.
type scanner struct {
	data []byte
	max  int
}

const (
	stValue = iota // a value starts at i (whitespace skipped)
	stKey          // an object key starts at i (whitespace skipped)
	stAfter        // a value ended just before i
)

// run checks s.data. frames, keys and unesc are empty slices whose
// capacity (on the caller's stack) is used before growing on the heap.
func (s *scanner) run(frames []frame, keys []keyRef, unesc []byte) *Error {
	data := s.data
	n := len(data)
	i := skipWS(data, 0)
	if i >= n {
		return newError(ErrSyntax, i, "unexpected end of input")
	}
	switch c := data[i]; c {
	case '{':
	case '[':
		return newError(ErrBatch, i, "top-level array (JSON-RPC batch) not supported")
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
		return newError(ErrNotObject, i, "top-level value is not an object")
	default:
		return s.unexpected(i, "looking for beginning of value")
	}

	var indexes []map[uint64]int32 // one per open object with f.big
	state := stValue
	for {
		switch state {
		case stValue:
			if i >= n {
				return eof(i)
			}
			switch c := data[i]; c {
			case '{':
				if len(frames) >= s.max {
					return s.depthError(i)
				}
				i = skipWS(data, i+1)
				if i < n && data[i] == '}' {
					i++
					state = stAfter
					continue
				}
				frames = append(frames, frame{keys: int32(len(keys)), unesc: int32(len(unesc))})
				state = stKey
			case '[':
				if len(frames) >= s.max {
					return s.depthError(i)
				}
				i = skipWS(data, i+1)
				if i < n && data[i] == ']' {
					i++
					state = stAfter
					continue
				}
				frames = append(frames, frame{keys: -1})
			case '"':
				end, _, err := s.scanString(i)
				if err != nil {
					return err
				}
				i = end
				state = stAfter
			case 't':
				if i+4 > n || string(data[i:i+4]) != "true" {
					return s.badLiteral(i, "true")
				}
				i += 4
				state = stAfter
			case 'f':
				if i+5 > n || string(data[i:i+5]) != "false" {
					return s.badLiteral(i, "false")
				}
				i += 5
				state = stAfter
			case 'n':
				if i+4 > n || string(data[i:i+4]) != "null" {
					return s.badLiteral(i, "null")
				}
				i += 4
				state = stAfter
			default:
				if c == '-' || c-'0' <= 9 {
					end, err := s.scanNumber(i)
					if err != nil {
						return err
					}
					i = end
					state = stAfter
					continue
				}
				return s.unexpected(i, "looking for beginning of value")
			}

		case stKey:
			if i >= n {
				return eof(i)
			}
			if data[i] != '"' {
				return s.unexpected(i, "looking for beginning of object key string")
			}
			end, esc, err := s.scanString(i)
			if err != nil {
				return err
			}

			// Duplicate detection, on the unescaped key.
			f := &frames[len(frames)-1]
			var k keyRef
			if esc {
				off := len(unesc)
				var ok bool
				if unesc, ok = appendUnescaped(unesc, data[i+1:end-1]); !ok {
					// Unreachable: scanString validated the escapes.
					return newError(ErrSyntax, i, "invalid escape in object key")
				}
				k = keyRef{off: int32(off), end: int32(len(unesc)), esc: true}
			} else {
				k = keyRef{off: int32(i + 1), end: int32(end - 1)}
			}
			kb := k.bytes(data, unesc)
			k.fp = fingerprint(kb)
			prev := keys[f.keys:]
			if !f.big {
				if hasKey(data, unesc, prev, k.fp, kb) {
					return duplicateKeyError(i, kb)
				}
				if len(prev) == smallObject {
					// Large object: index its keys by hash.
					index := make(map[uint64]int32, 4*smallObject)
					for j, p := range prev {
						index[maphash.Bytes(seed, p.bytes(data, unesc))] = int32(j)
					}
					indexes = append(indexes, index)
					f.big = true
				}
			}
			if f.big {
				index := indexes[len(indexes)-1]
				h := maphash.Bytes(seed, kb)
				if j, ok := index[h]; !ok {
					index[h] = int32(len(prev))
				} else if bytes.Equal(prev[j].bytes(data, unesc), kb) ||
					hasKey(data, unesc, prev, k.fp, kb) { // on a hash collision
					return duplicateKeyError(i, kb)
				}
			}
			keys = append(keys, k)

			i = skipWS(data, end)
			if i >= n {
				return eof(i)
			}
			if data[i] != ':' {
				return s.unexpected(i, "after object key")
			}
			i = skipWS(data, i+1)
			state = stValue

		case stAfter:
			top := len(frames) - 1
			i = skipWS(data, i)
			if top < 0 {
				if i < n {
					return newError(ErrTrailing, i, "trailing data after top-level value")
				}
				return nil
			}
			if i >= n {
				return eof(i)
			}
			c := data[i]
			f := frames[top]
			isObj := f.keys >= 0
			switch {
			case c == ',':
				i = skipWS(data, i+1)
				if isObj {
					state = stKey
				} else {
					state = stValue
				}
			case isObj && c == '}':
				keys = keys[:f.keys]
				unesc = unesc[:f.unesc]
				if f.big {
					indexes[len(indexes)-1] = nil
					indexes = indexes[:len(indexes)-1]
				}
				frames = frames[:top]
				i++
			case !isObj && c == ']':
				frames = frames[:top]
				i++
			case isObj:
				return s.unexpected(i, "after object member")
			default:
				return s.unexpected(i, "after array element")
			}
		}
	}
}

func (k keyRef) bytes(data, unesc []byte) []byte {
	if k.esc {
		return unesc[k.off:k.end]
	}
	return data[k.off:k.end]
}

func fingerprint(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(len(b))<<16 ^ uint32(b[0])<<8 ^ uint32(b[len(b)-1])
}

// seed keys the hashes of large objects' keys. It is random per process,
// so collisions cannot be precomputed; they would only cost time anyway.
var seed = maphash.MakeSeed()

// hasKey reports whether kb, whose fingerprint is fp, equals one of keys.
func hasKey(data, unesc []byte, keys []keyRef, fp uint32, kb []byte) bool {
	for _, p := range keys {
		if p.fp == fp && bytes.Equal(p.bytes(data, unesc), kb) {
			return true
		}
	}
	return false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanString scans the string starting with the quote at data[i]. It returns
// the offset just past the closing quote and whether the string contained
// escapes.
func (s *scanner) scanString(i int) (end int, esc bool, err *Error) {
	data := s.data
	n := len(data)
	i++
	for {
		// Skip eight plain bytes at a time. t has a high bit set in the
		// first byte (and maybe later ones) that is a control character,
		// '"', '\\' or non-ASCII; borrows only propagate upwards from such
		// a byte, so the lowest set bit is exact.
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(data[i:])
			t := ((x - lsb*0x20) | ((x ^ lsb*'"') - lsb) | ((x ^ lsb*'\\') - lsb) | x) & msb
			if t != 0 {
				i += bits.TrailingZeros64(t) >> 3
				break
			}
			i += 8
		}
		if i >= n {
			return 0, false, newError(ErrSyntax, n, "unexpected end of input in string")
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i, err = s.scanEscape(i); err != nil {
				return 0, false, err
			}
		case c < 0x20:
			return 0, false, newError(ErrSyntax, i, "control character "+strconv.QuoteRune(rune(c))+" in string")
		case c < utf8.RuneSelf:
			i++
		default:
			size := utf8Size(data[i:])
			if size == 0 {
				return 0, false, newError(ErrUTF8, i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// scanEscape validates the escape sequence starting with the backslash at
// data[i] and returns the offset just past it.
func (s *scanner) scanEscape(i int) (int, *Error) {
	data := s.data
	if i+1 >= len(data) {
		return 0, newError(ErrSyntax, len(data), "unexpected end of input in string escape")
	}
	switch data[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, nil
	case 'u':
		r, ok := hex4(data, i+2)
		if !ok {
			return 0, newError(ErrSyntax, i, "invalid \\u escape in string")
		}
		switch {
		case r < 0xD800 || r > 0xDFFF:
			return i + 6, nil
		case r >= 0xDC00:
			return 0, newError(ErrUTF8, i, "unpaired surrogate escape in string")
		}
		// High surrogate: a low surrogate escape must follow.
		if i+8 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
			r2, ok := hex4(data, i+8)
			if !ok {
				return 0, newError(ErrSyntax, i+6, "invalid \\u escape in string")
			}
			if r2 >= 0xDC00 && r2 <= 0xDFFF {
				return i + 12, nil
			}
		}
		return 0, newError(ErrUTF8, i, "unpaired surrogate escape in string")
	default:
		return 0, newError(ErrSyntax, i, "invalid escape "+strconv.Quote(string(data[i:i+2]))+" in string")
	}
}

// scanNumber scans the number starting at data[i] and returns the offset
// just past it.
func (s *scanner) scanNumber(i int) (int, *Error) {
	data := s.data
	n := len(data)
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return 0, eof(i)
	case data[i] == '0':
		i++
	case data[i]-'1' <= 8:
		i++
		for i < n && data[i]-'0' <= 9 {
			i++
		}
	default:
		return 0, s.unexpected(i, "in number")
	}
	if i < n && data[i] == '.' {
		i++
		if i >= n {
			return 0, eof(i)
		}
		if data[i]-'0' > 9 {
			return 0, s.unexpected(i, "after decimal point in number")
		}
		for i < n && data[i]-'0' <= 9 {
			i++
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= n {
			return 0, eof(i)
		}
		if data[i]-'0' > 9 {
			return 0, s.unexpected(i, "in exponent of number")
		}
		for i < n && data[i]-'0' <= 9 {
			i++
		}
	}
	return i, nil
}

func (s *scanner) badLiteral(i int, want string) *Error {
	for j := 1; j < len(want); j++ {
		if i+j >= len(s.data) {
			return eof(i + j)
		}
		if s.data[i+j] != want[j] {
			return s.unexpected(i+j, "in literal "+want)
		}
	}
	return s.unexpected(i, "in literal "+want) // unreachable
}

func (s *scanner) depthError(i int) *Error {
	return newError(ErrDepth, i, "nesting deeper than "+strconv.Itoa(s.max))
}

func eof(i int) *Error {
	return newError(ErrSyntax, i, "unexpected end of input")
}

// unexpected reports the byte at data[i], which is not allowed there. A byte
// that does not start valid UTF-8 is reported as ErrUTF8.
func (s *scanner) unexpected(i int, context string) *Error {
	data := s.data
	c := data[i]
	if c < utf8.RuneSelf {
		return newError(ErrSyntax, i, "invalid character "+strconv.QuoteRune(rune(c))+" "+context)
	}
	if utf8Size(data[i:]) == 0 {
		return newError(ErrUTF8, i, "invalid UTF-8")
	}
	if i == 0 && bytes.HasPrefix(data, bom) {
		return newError(ErrSyntax, 0, "byte order mark not allowed")
	}
	r, _ := utf8.DecodeRune(data[i:])
	return newError(ErrSyntax, i, "invalid character "+strconv.QuoteRune(r)+" "+context)
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// skipWS returns the offset of the first byte at or after i that is not JSON
// whitespace.
func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\n', '\r', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// utf8Size returns the length of the valid UTF-8 sequence at the start of b,
// whose first byte is not ASCII, or 0 if it is not valid (overlong forms,
// surrogates and values above U+10FFFF are invalid, as in utf8.Valid).
func utf8Size(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	c := b[0]
	switch {
	case c < 0xC2:
		return 0
	case c < 0xE0:
		if len(b) < 2 || b[1]&0xC0 != 0x80 {
			return 0
		}
		return 2
	case c < 0xF0:
		if len(b) < 3 || b[2]&0xC0 != 0x80 {
			return 0
		}
		lo, hi := byte(0x80), byte(0xBF)
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F
		}
		if b[1] < lo || b[1] > hi {
			return 0
		}
		return 3
	case c < 0xF5:
		if len(b) < 4 || b[2]&0xC0 != 0x80 || b[3]&0xC0 != 0x80 {
			return 0
		}
		lo, hi := byte(0x80), byte(0xBF)
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
		if b[1] < lo || b[1] > hi {
			return 0
		}
		return 4
	default:
		return 0
	}
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendUnescaped appends the unescaped form of the string body src (without
// quotes) to dst. It reports false, leaving dst in an unspecified state, if
// src contains an invalid escape or an unpaired surrogate escape.
func appendUnescaped(dst, src []byte) ([]byte, bool) {
	for i := 0; i < len(src); {
		if src[i] != '\\' {
			j := bytes.IndexByte(src[i:], '\\')
			if j < 0 {
				return append(dst, src[i:]...), true
			}
			dst = append(dst, src[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(src) {
			return dst, false
		}
		var c byte
		switch src[i+1] {
		case '"', '\\', '/':
			c = src[i+1]
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r, ok := hex4(src, i+2)
			if !ok {
				return dst, false
			}
			i += 6
			if r >= 0xD800 && r <= 0xDFFF {
				if r >= 0xDC00 || i+6 > len(src) || src[i] != '\\' || src[i+1] != 'u' {
					return dst, false
				}
				r2, ok := hex4(src, i+2)
				if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
					return dst, false
				}
				r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		dst = append(dst, c)
		i += 2
	}
	return dst, true
}
