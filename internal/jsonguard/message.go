package jsonguard

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxExactInt is the largest integer magnitude a float64 holds exactly
// together with all smaller ones (2^53).
const maxExactInt = 1 << 53

// CheckMessage checks the parts of a JSON-RPC message that decide what an
// upstream will do with it, beyond what Check enforces: data must already
// have passed Check. It returns nil or an *Error of kind ErrID or
// ErrKeyCase.
//
//   - "id", if present, is a string or an integer literal whose magnitude
//     is at most 2^53 (ErrID). Fractions (1.5), exponents (1e2, 1e400),
//     larger integers (9007199254740993), booleans, objects, arrays, and
//     null in a request are refused: decoders that keep ids as float64
//     (JavaScript, encoding/json into any) round them, so two distinct ids
//     could become one, or the answer could carry an id the client never
//     sent. A null id is accepted only in an error response, as JSON-RPC
//     allows.
//   - No key of the message, and no key of the params of tools/call,
//     prompts/get and resources/read, resources/subscribe and
//     resources/unsubscribe, differs only in case from a member the
//     protocol defines there (ErrKeyCase): "Method", "PARAMS", "ID",
//     "Jsonrpc"; "Name", "URI", "Arguments", "_META". Case is compared with
//     Unicode simple folding, so "paramſ" (long s) and "\u212a" (Kelvin
//     sign) count as variants too.
//
// Why case matters: the gateway forwards the very bytes it checked. It
// reads the method, the tool name or the resource URI from the members
// spelled exactly as the protocol spells them, and authorises that. An
// upstream whose decoder matches keys without regard to case (Go's
// encoding/json does, with the same Unicode folding) could read
// {"name":"safe","Name":"rm_rf"} or {"method":"ping","Method":"tools/call"}
// differently, and run a tool or method that was never authorised. No
// conforming client sends such keys, so they are refused outright.
func CheckMessage(data []byte) error {
	if err := checkMessage(data); err != nil {
		return err
	}
	return nil
}

// envelopeMembers are the members of a JSON-RPC message.
var envelopeMembers = []string{"jsonrpc", "method", "id", "params", "result", "error"}

// nameParamsMembers are the params members that name what a tools/call,
// prompts/get or resources/* call acts on, or carry what it acts with.
var nameParamsMembers = []string{"name", "uri", "arguments", "_meta"}

func checkMessage(data []byte) *Error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil // Check reports this
	}
	var (
		method              string
		hasMethod, hasError bool
		id                  member
		hasID               bool
		params              = -1
	)
	it := members{data: data, i: i + 1}
	for {
		m, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := it.skip(&m); err != nil {
			return err
		}
		key, err := m.key()
		if err != nil {
			return err
		}
		if err := caseVariant(key, envelopeMembers, m.keyOff, ""); err != nil {
			return err
		}
		switch key {
		case "method":
			if data[m.val] == '"' {
				if method, err = m.stringValue(""); err != nil {
					return err
				}
			}
			hasMethod = true
		case "id":
			id, hasID = m, true
		case "params":
			if data[m.val] == '{' {
				params = m.val
			}
		case "error":
			hasError = true
		}
	}
	if hasID {
		if err := checkID(data[id.val:id.end], id.val, hasMethod, hasError); err != nil {
			return err
		}
	}
	if params < 0 {
		return nil
	}
	switch method {
	case "tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe":
	default:
		return nil
	}
	it = members{data: data, i: params + 1}
	for {
		m, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := it.skip(&m); err != nil {
			return err
		}
		key, err := m.key()
		if err != nil {
			return err
		}
		if err := caseVariant(key, nameParamsMembers, m.keyOff, " in the params of "+method); err != nil {
			return err
		}
	}
}

// key returns m's key, unescaped.
func (m *member) key() (string, *Error) {
	raw := m.data[m.keyOff+1 : m.keyEnd-1]
	if !m.keyEsc {
		return string(raw), nil
	}
	b, ok := appendUnescaped(nil, raw)
	if !ok {
		return "", newError(ErrSyntax, m.keyOff, "invalid escape in object key")
	}
	return string(b), nil
}

// caseVariant reports key if it equals one of names without regard to case
// but is not spelled exactly like it.
func caseVariant(key string, names []string, off int, where string) *Error {
	// The longest name, "arguments", has 9 bytes; a variant has at most 4
	// bytes per byte of it (the Kelvin sign and long s have 3).
	if len(key) > 9*utf8.UTFMax || !utf8.ValidString(key) {
		return nil
	}
	for _, n := range names {
		if key != n && strings.EqualFold(key, n) {
			return newError(ErrKeyCase, off, "key "+quoteKey(key)+where+" differs only in case from the protocol member "+strconv.Quote(n)+"; upstreams may read it as that member")
		}
	}
	return nil
}

func quoteKey(k string) string {
	if len(k) > maxQuotedKey {
		return strconv.Quote(k[:maxQuotedKey]) + "..."
	}
	return strconv.Quote(k)
}

// checkID checks the raw JSON value v of "id" at offset off.
func checkID(v []byte, off int, request, errorResponse bool) *Error {
	switch c := v[0]; {
	case c == '"':
		return nil
	case c == 'n':
		if request || !errorResponse {
			return newError(ErrID, off, "id is null; a request's id must be a string or an integer")
		}
		return nil
	case c == '-' || c-'0' <= 9:
		digits := v
		if c == '-' {
			digits = v[1:]
		}
		for _, d := range digits {
			if d-'0' > 9 {
				return newError(ErrID, off, "id "+quoteKey(string(v))+" is not an integer; ids must be strings or integers (no fraction or exponent)")
			}
		}
		if n, err := strconv.ParseUint(string(digits), 10, 64); err != nil || n > maxExactInt {
			return newError(ErrID, off, "id "+quoteKey(string(v))+" is too large: integer ids must be within ±2^53 so that no decoder rounds them")
		}
		return nil
	default:
		return newError(ErrID, off, "id must be a string or an integer, not "+jsonType(c))
	}
}

func jsonType(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "this value"
}
