package jsonguard

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting limit used when Limits.MaxDepth is zero.
const DefaultMaxDepth = 64

// MaxInputSize is the largest input Check accepts (2 GiB - 1): offsets are
// kept in 32 bits to keep Check's working memory small. Larger inputs are
// rejected with ErrTooLarge; a gateway limits bodies far below this anyway.
const MaxInputSize = math.MaxInt32

// Limits configures Check.
type Limits struct {
	// MaxDepth is the maximum number of nested containers (objects and
	// arrays) including the top-level object: with MaxDepth 1 only an object
	// whose members are all scalars is accepted. Zero or a negative value
	// means DefaultMaxDepth.
	MaxDepth int
}

// Kind classifies an Error.
type Kind int

// Kinds of Error. The zero Kind is not used.
const (
	// ErrSyntax: the input is not JSON (including empty input, a byte order
	// mark, control characters in strings, invalid escapes, and whitespace
	// other than space, tab, CR and LF).
	ErrSyntax Kind = iota + 1
	// ErrUTF8: invalid UTF-8 bytes, or an unpaired UTF-16 surrogate escape
	// inside a string.
	ErrUTF8
	// ErrDepth: nesting deeper than Limits.MaxDepth.
	ErrDepth
	// ErrDuplicateKey: an object has two members whose keys are equal after
	// unescaping.
	ErrDuplicateKey
	// ErrBatch: the top-level value is an array (a JSON-RPC batch).
	ErrBatch
	// ErrNotObject: the top-level value is a string, number or literal.
	ErrNotObject
	// ErrTrailing: non-whitespace data follows the top-level object.
	ErrTrailing
	// ErrEnvelope: returned only by ParseEnvelope, when a routed field has
	// the wrong JSON type (for example a non-string "method").
	ErrEnvelope
	// ErrTooLarge: the input is larger than MaxInputSize.
	ErrTooLarge
	// ErrID: returned only by CheckMessage, when "id" is neither a string
	// nor an integer that a float64 holds exactly.
	ErrID
	// ErrKeyCase: returned only by CheckMessage, when a key differs only
	// in case from a protocol member ("Method", "PARAMS", "Name"...).
	ErrKeyCase
)

var kindNames = [...]string{
	ErrSyntax:       "syntax error",
	ErrUTF8:         "invalid UTF-8",
	ErrDepth:        "nesting too deep",
	ErrDuplicateKey: "duplicate key",
	ErrBatch:        "batch not supported",
	ErrNotObject:    "not an object",
	ErrTrailing:     "trailing data",
	ErrEnvelope:     "invalid envelope",
	ErrTooLarge:     "input too large",
	ErrID:           "invalid id",
	ErrKeyCase:      "key differs only in case",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error describes why a message was rejected.
type Error struct {
	Kind   Kind
	Offset int    // byte offset in the input where the problem was detected
	Msg    string // human-readable detail, without the "jsonguard: " prefix
}

// Error returns, for example, `jsonguard: duplicate key "id" at offset 42`.
func (e *Error) Error() string {
	return "jsonguard: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// KindOf returns the Kind of err if it is or wraps an *Error, and 0 otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func newError(k Kind, off int, msg string) *Error {
	return &Error{Kind: k, Offset: off, Msg: msg}
}

// maxQuotedKey bounds how much of a duplicate key is echoed in an error
// message; keys are attacker-controlled and may be long.
const maxQuotedKey = 64

func duplicateKeyError(off int, key []byte) *Error {
	suffix := ""
	if len(key) > maxQuotedKey {
		n := maxQuotedKey
		for n > 0 && !utf8.RuneStart(key[n]) {
			n--
		}
		key = key[:n]
		suffix = "..."
	}
	return newError(ErrDuplicateKey, off, "duplicate key "+strconv.Quote(string(key))+suffix)
}

// Check validates one JSON-RPC message body. It returns nil or an *Error.
//
// data must be exactly one JSON object (RFC 8259), optionally surrounded by
// JSON whitespace, and additionally:
//   - data is valid UTF-8 everywhere, and no string contains an unpaired
//     UTF-16 surrogate escape such as "\ud800" or "\udc00" (ErrUTF8);
//   - nesting is at most lim.MaxDepth containers deep (ErrDepth);
//   - no object, at any level, has two keys that are equal after unescaping
//     (ErrDuplicateKey);
//   - the top-level value is an object: arrays (JSON-RPC batches) give
//     ErrBatch and scalars ErrNotObject; nothing but whitespace may follow
//     it (ErrTrailing).
//
// A byte order mark is rejected (ErrSyntax). Numbers are not range-checked.
// Inputs larger than MaxInputSize are rejected (ErrTooLarge).
// Check reports the first problem in input order; ErrBatch and ErrNotObject
// are reported as soon as the first byte of the top-level value is seen.
//
// Check does not retain data and, for ordinary messages, does not allocate.
func Check(data []byte, lim Limits) error {
	if err := checkSize(len(data)); err != nil {
		return err
	}
	max := lim.MaxDepth
	if max <= 0 {
		max = DefaultMaxDepth
	}
	var (
		frameBuf [DefaultMaxDepth]frame
		keyBuf   [keyBufLen]keyRef
		unescBuf [unescBufLen]byte
	)
	s := scanner{data: data, max: max}
	if err := s.run(frameBuf[:0], keyBuf[:0], unescBuf[:0]); err != nil {
		return err
	}
	return nil
}

func checkSize(n int) *Error {
	if n > MaxInputSize {
		return newError(ErrTooLarge, 0, "input larger than "+strconv.Itoa(MaxInputSize)+" bytes")
	}
	return nil
}
