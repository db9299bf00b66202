package jsonguard

import (
	"encoding/binary"
	"math/bits"
)

// Envelope holds the top-level JSON-RPC fields the gateway routes on.
type Envelope struct {
	JSONRPC string // value of "jsonrpc"; "" if absent
	Method  string // value of "method"; "" if absent (responses)
	// ID is the raw JSON text of "id" (for example `7`, `"abc"` or `null`),
	// nil if absent. It aliases the data passed to ParseEnvelope.
	ID        []byte
	HasResult bool // a "result" member is present (even if null)
	HasError  bool // an "error" member is present (even if null)
	// ParamsName and ParamsURI are the string values of "name" and "uri"
	// inside an object-valued "params", whatever the method; "" if absent
	// or not strings. Use Name to pick the one that matches the method.
	ParamsName string
	ParamsURI  string
}

// Name returns the value that the Mcp-Name HTTP header mirrors for e.Method
// — params.name for tools/call and prompts/get, params.uri for
// resources/read, resources/subscribe and resources/unsubscribe — and
// whether e.Method is one of those methods.
func (e *Envelope) Name() (string, bool) {
	switch e.Method {
	case "tools/call", "prompts/get":
		return e.ParamsName, true
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return e.ParamsURI, true
	}
	return "", false
}

// Envelope fields, as bits of a "seen" mask.
const (
	fNone    = 0
	fJSONRPC = 1 << iota
	fMethod
	fID
	fResult
	fError
	fParams
	fName
	fURI
)

// ParseEnvelope extracts, without decoding params, the top-level JSON-RPC
// fields the gateway routes on: "jsonrpc", "method", "id", the presence of
// "result" and "error", and the string members "name" and "uri" of
// "params". Keys and string values are compared and returned unescaped.
//
// ParseEnvelope is meant to run after Check accepted data; it does not
// validate what it skips. On any input it returns without panicking, but for
// input that Check rejects it may return an error or a partial Envelope. It
// returns an *Error of kind ErrEnvelope if "jsonrpc" or "method" is not a
// string, and of kind ErrDuplicateKey if one of the fields it extracts
// occurs twice.
//
// The only allocations are for strings other than "2.0" and the MCP method
// names, which are interned; typically that is one, for ParamsName or
// ParamsURI.
func ParseEnvelope(data []byte) (Envelope, error) {
	var env Envelope
	if err := parseEnvelope(data, &env); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

func parseEnvelope(data []byte, env *Envelope) *Error {
	i := skipWS(data, 0)
	if i >= len(data) {
		return eof(i)
	}
	switch data[i] {
	case '{':
	case '[':
		return newError(ErrBatch, i, "top-level array (JSON-RPC batch) not supported")
	default:
		return newError(ErrNotObject, i, "top-level value is not an object")
	}
	var seen uint
	it := members{data: data, i: i + 1}
	for {
		m, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		field := m.field()
		if field&(fJSONRPC|fMethod|fID|fResult|fError|fParams) != 0 {
			if seen&field != 0 {
				return newError(ErrDuplicateKey, m.keyOff, "duplicate key "+fieldNames[field])
			}
			seen |= field
		}
		if field == fParams && data[m.val] == '{' {
			// Extract name and uri while skipping params, in one pass.
			end, err := parseParams(data, m.val, env)
			if err != nil {
				return err
			}
			it.i = end
			continue
		}
		if err := it.skip(&m); err != nil {
			return err
		}
		switch field {
		case fJSONRPC:
			if env.JSONRPC, err = m.stringValue(`"jsonrpc" is not a string`); err != nil {
				return err
			}
		case fMethod:
			if env.Method, err = m.stringValue(`"method" is not a string`); err != nil {
				return err
			}
		case fID:
			env.ID = data[m.val:m.end:m.end]
		case fResult:
			env.HasResult = true
		case fError:
			env.HasError = true
		}
		// By-position or null params: nothing to extract.
	}
}

// parseParams extracts "name" and "uri" from the params object at data[i]
// and returns the offset just past it.
func parseParams(data []byte, i int, env *Envelope) (int, *Error) {
	var seen uint
	it := members{data: data, i: i + 1}
	for {
		m, ok, err := it.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			return it.i, nil
		}
		if err := it.skip(&m); err != nil {
			return 0, err
		}
		field := m.field()
		if field&(fName|fURI) == 0 {
			continue
		}
		if seen&field != 0 {
			return 0, newError(ErrDuplicateKey, m.keyOff, "duplicate key "+fieldNames[field]+" in params")
		}
		seen |= field
		if data[m.val] != '"' {
			continue // not a string: leave the field empty
		}
		s, err := m.stringValue("")
		if err != nil {
			return 0, err
		}
		if field == fName {
			env.ParamsName = s
		} else {
			env.ParamsURI = s
		}
	}
}

var fieldNames = map[uint]string{
	fJSONRPC: `"jsonrpc"`,
	fMethod:  `"method"`,
	fID:      `"id"`,
	fResult:  `"result"`,
	fError:   `"error"`,
	fParams:  `"params"`,
	fName:    `"name"`,
	fURI:     `"uri"`,
}

// member is one object member: data[keyOff:keyEnd] is the quoted key and
// data[val:end] the value.
type member struct {
	data           []byte
	keyOff, keyEnd int
	keyEsc         bool
	val, end       int
	valEsc         bool // the value is a string with escapes
}

// field identifies the member's key among the envelope fields, after
// unescaping it.
func (m *member) field() uint {
	key := m.data[m.keyOff+1 : m.keyEnd-1]
	if m.keyEsc {
		// Each field name has at most 7 bytes, each of which is at most 6
		// escaped bytes; longer keys cannot match.
		if len(key) > 42 {
			return fNone
		}
		var buf [42]byte
		var ok bool
		if key, ok = appendUnescaped(buf[:0], key); !ok {
			return fNone
		}
	}
	switch string(key) {
	case "jsonrpc":
		return fJSONRPC
	case "method":
		return fMethod
	case "id":
		return fID
	case "result":
		return fResult
	case "error":
		return fError
	case "params":
		return fParams
	case "name":
		return fName
	case "uri":
		return fURI
	}
	return fNone
}

// stringValue returns the unescaped string value of m, or an ErrEnvelope
// error with message notString if the value is not a string.
func (m *member) stringValue(notString string) (string, *Error) {
	if m.data[m.val] != '"' {
		return "", newError(ErrEnvelope, m.val, notString)
	}
	raw := m.data[m.val+1 : m.end-1]
	if !m.valEsc {
		return intern(raw), nil
	}
	var buf [64]byte
	b, ok := appendUnescaped(buf[:0], raw)
	if !ok {
		return "", newError(ErrSyntax, m.val, "invalid escape in string")
	}
	return intern(b), nil
}

// intern returns string(b), without allocating for "2.0" and the method
// names of MCP.
func intern(b []byte) string {
	switch string(b) {
	case "2.0":
		return "2.0"
	case "initialize":
		return "initialize"
	case "ping":
		return "ping"
	case "tools/list":
		return "tools/list"
	case "tools/call":
		return "tools/call"
	case "prompts/list":
		return "prompts/list"
	case "prompts/get":
		return "prompts/get"
	case "resources/list":
		return "resources/list"
	case "resources/templates/list":
		return "resources/templates/list"
	case "resources/read":
		return "resources/read"
	case "resources/subscribe":
		return "resources/subscribe"
	case "resources/unsubscribe":
		return "resources/unsubscribe"
	case "completion/complete":
		return "completion/complete"
	case "logging/setLevel":
		return "logging/setLevel"
	case "sampling/createMessage":
		return "sampling/createMessage"
	case "elicitation/create":
		return "elicitation/create"
	case "roots/list":
		return "roots/list"
	case "tasks/get":
		return "tasks/get"
	case "tasks/result":
		return "tasks/result"
	case "tasks/list":
		return "tasks/list"
	case "tasks/cancel":
		return "tasks/cancel"
	case "notifications/initialized":
		return "notifications/initialized"
	case "notifications/cancelled":
		return "notifications/cancelled"
	case "notifications/progress":
		return "notifications/progress"
	case "notifications/message":
		return "notifications/message"
	case "notifications/roots/list_changed":
		return "notifications/roots/list_changed"
	case "notifications/tools/list_changed":
		return "notifications/tools/list_changed"
	case "notifications/prompts/list_changed":
		return "notifications/prompts/list_changed"
	case "notifications/resources/list_changed":
		return "notifications/resources/list_changed"
	case "notifications/resources/updated":
		return "notifications/resources/updated"
	case "notifications/tasks/status":
		return "notifications/tasks/status"
	case "notifications/elicitation/complete":
		return "notifications/elicitation/complete"
	}
	return string(b)
}

// members iterates over the members of an object without validating it.
// Each call of next must be followed by a call of skip, or the caller must
// set i to the offset just past the member's value.
type members struct {
	data []byte
	i    int // just past '{' or past the previous member's value
	n    int // members returned so far
}

// next reads the next member's key and the colon after it, or returns
// ok == false and sets i past the closing brace.
func (it *members) next() (m member, ok bool, err *Error) {
	data := it.data
	i := skipWS(data, it.i)
	if i >= len(data) {
		return m, false, eof(i)
	}
	if it.n > 0 {
		switch data[i] {
		case '}':
			it.i = i + 1
			return m, false, nil
		case ',':
			i = skipWS(data, i+1)
		default:
			return m, false, newError(ErrSyntax, i, "expected ',' or '}' after object member")
		}
	} else if data[i] == '}' {
		it.i = i + 1
		return m, false, nil
	}
	if i >= len(data) || data[i] != '"' {
		return m, false, newError(ErrSyntax, i, "expected object key")
	}
	m.data = data
	m.keyOff = i
	var good bool
	if m.keyEnd, m.keyEsc, good = skipString(data, i); !good {
		return m, false, eof(len(data))
	}
	i = skipWS(data, m.keyEnd)
	if i >= len(data) || data[i] != ':' {
		return m, false, newError(ErrSyntax, i, "expected ':' after object key")
	}
	m.val = skipWS(data, i+1)
	if m.val >= len(data) {
		return m, false, eof(m.val)
	}
	it.n++
	return m, true, nil
}

// skip finds the end of m's value and moves past it.
func (it *members) skip(m *member) *Error {
	var ok bool
	if m.end, m.valEsc, ok = skipValue(it.data, m.val); !ok {
		return newError(ErrSyntax, m.val, "invalid value")
	}
	it.i = m.end
	return nil
}

// skipString returns the offset just past the string whose opening quote is
// at data[i], and whether it contains escapes. It does not validate.
func skipString(data []byte, i int) (end int, esc bool, ok bool) {
	n := len(data)
	i++
	for {
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(data[i:])
			t := (hasZero(x^lsb*'"') | hasZero(x^lsb*'\\'))
			if t != 0 {
				i += bits.TrailingZeros64(t) >> 3
				break
			}
			i += 8
		}
		for i < n && data[i] != '"' && data[i] != '\\' {
			i++
		}
		if i >= n {
			return n, esc, false
		}
		if data[i] == '"' {
			return i + 1, esc, true
		}
		esc = true
		i += 2
	}
}

// hasZero has a high bit set in the lowest zero byte of x (and maybe in
// higher bytes), and is zero if x has no zero byte.
func hasZero(x uint64) uint64 {
	return (x - lsb) &^ x & msb
}

// skipValue returns the offset just past the value starting at data[i], and
// for a string value whether it contains escapes. It validates only enough
// to find the end: brackets are counted, not matched.
func skipValue(data []byte, i int) (end int, esc bool, ok bool) {
	n := len(data)
	if i >= n {
		return n, false, false
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < n {
			// Jump to the next quote or bracket.
			for i+8 <= n {
				x := binary.LittleEndian.Uint64(data[i:])
				y := x | lsb*0x20 // folds '[' into '{' and ']' into '}'
				t := hasZero(x^lsb*'"') | hasZero(y^lsb*'{') | hasZero(y^lsb*'}')
				if t != 0 {
					i += bits.TrailingZeros64(t) >> 3
					break
				}
				i += 8
			}
			if i >= n {
				break
			}
			switch data[i] {
			case '"':
				if i, _, ok = skipString(data, i); !ok {
					return n, false, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth <= 0 {
					return i + 1, false, true
				}
			}
			i++
		}
		return n, false, false
	default:
		j := i
		for j < n {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return j, false, false
				}
				return j, false, true
			}
			j++
		}
		return j, false, j > i
	}
}
