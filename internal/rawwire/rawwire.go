// Package rawwire is the byte work of the gateway's hot path: a client's
// tools/call travels to an HTTP upstream and its result back without being
// decoded and re-encoded.
//
// Everything here works on messages that internal/jsonguard has validated
// (the client's request at the HTTP edge; each message of the upstream's
// answer here, before anything reads it). Only what the gateway owns is
// rewritten — the request id, the tool's name at its upstream — by
// splicing; every other byte travels as it came.
//
// The package knows HTTP and JSON-RPC framing (a JSON body or a
// text/event-stream of messages), not MCP's rules: what a result must
// contain, and what to do with a message that is not the answer, is the
// caller's.
package rawwire

import (
	"strconv"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
)

// An Edit decides, member by member, what of an object is copied: drop
// it, replace its value (val: the new raw JSON), or keep it as it is.
type Edit func(key, value []byte) (val []byte, keep bool)

// AppendRequest appends to dst a JSON-RPC request with the string id id,
// method and the params object params (validated JSON) copied member by
// member through edit (nil: every member as it is).
func AppendRequest(dst []byte, id, method string, params []byte, edit Edit) ([]byte, error) {
	return AppendRequestTail(dst, id, method, params, edit, nil)
}

// A Tail appends members after an object's last one, each preceded by a
// comma unless empty (the object had no member left).
type Tail func(dst []byte, empty bool) []byte

// AppendRequestTail is [AppendRequest] with tail (nil: none) appending
// members to the params object after the edited ones: a member the client
// did not send that the gateway adds (the _meta of trace context).
func AppendRequestTail(dst []byte, id, method string, params []byte, edit Edit, tail Tail) ([]byte, error) {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"method":`...)
	dst = AppendString(dst, method)
	if params == nil {
		return append(dst, '}'), nil
	}
	dst = append(dst, `,"params":`...)
	dst, err := AppendObjectTail(dst, params, edit, tail)
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// AppendObject appends the object obj (validated JSON) to dst, member by
// member through edit (nil: every member as it is).
func AppendObject(dst, obj []byte, edit Edit) ([]byte, error) {
	return AppendObjectTail(dst, obj, edit, nil)
}

// AppendObjectTail is [AppendObject] with tail (nil: none) appending
// members after the copied ones.
func AppendObjectTail(dst, obj []byte, edit Edit, tail Tail) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	err := jsonguard.Members(obj, func(m jsonguard.Member) bool {
		val := m.Value
		if edit != nil {
			v, keep := edit(m.Key, m.Value)
			if !keep {
				return true
			}
			if v != nil {
				val = v
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, m.RawKey...)
		dst = append(dst, ':')
		dst = append(dst, val...)
		return true
	})
	if err != nil {
		return nil, err
	}
	if tail != nil {
		dst = tail(dst, first)
	}
	return append(dst, '}'), nil
}

// AppendString appends s to dst as a JSON string. Invalid UTF-8 is
// replaced with U+FFFD, as encoding/json does.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, `\u00`...)
				dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// AppendResult appends the head of a JSON-RPC response with the raw id id
// (as the client sent it) up to its result: what follows is the result's
// bytes and [ResultTail].
func AppendResult(dst, id []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	return append(dst, `,"result":`...)
}

// ResultTail closes a response begun with [AppendResult].
const ResultTail = "}"

// AppendError appends a JSON-RPC error response with the raw id id. data,
// if not nil, must be valid JSON.
func AppendError(dst, id []byte, code int64, message string, data []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if len(id) == 0 {
		id = []byte("null")
	}
	dst = append(dst, id...)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, code, 10)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	if len(data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, "}}"...)
}

// SplitResponse reads a JSON-RPC response message (validated JSON): the
// raw result, or the error. Exactly one of them is set when err is nil.
func SplitResponse(msg []byte) (result []byte, e *Error, err error) {
	var errObj []byte
	err = jsonguard.Members(msg, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case "result":
			result = m.Value
		case "error":
			errObj = m.Value
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	if (result == nil) == (errObj == nil) {
		return nil, nil, protocolErrorf("a response must have exactly one of result and error")
	}
	if errObj != nil {
		if e, err = parseError(errObj); err != nil {
			return nil, nil, protocolErrorf("invalid error object: %v", err)
		}
	}
	return result, e, nil
}

// AppendEvent appends msg (one JSON message) to dst as an event of a
// text/event-stream. Line breaks in msg can only be whitespace between
// JSON tokens (a string holds them escaped); each becomes a space, so the
// event is one data line.
func AppendEvent(dst, msg []byte) []byte {
	dst = append(dst, "event: message\ndata: "...)
	start := len(dst)
	dst = append(dst, msg...)
	for i := start; i < len(dst); i++ {
		if dst[i] == '\n' || dst[i] == '\r' {
			dst[i] = ' '
		}
	}
	return append(dst, "\n\n"...)
}
