package rawwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
)

// Limits bound what a [Reader] accepts from an upstream.
type Limits struct {
	// MaxMessage is the largest message, in bytes (0: 64 MiB).
	MaxMessage int
	// MaxDepth is the deepest nesting of a message (0: jsonguard's default).
	MaxDepth int
}

// DefaultMaxMessage is the largest upstream message accepted when
// Limits.MaxMessage is zero.
const DefaultMaxMessage = 64 << 20

// An Answer is an upstream's response to one request: its result's raw
// bytes, or its error.
type Answer struct {
	// Result is the raw JSON of the response's "result"; nil when Error
	// is set. It is valid until Release.
	Result []byte
	// Error is the upstream's JSON-RPC error.
	Error *Error
	buf   *[]byte
	from  *Reader
}

// Release returns the answer's buffer for reuse; Result must not be used
// after it.
func (a *Answer) Release() {
	if a.buf != nil {
		a.from.putBuf(a.buf)
		a.buf = nil
	}
	a.Result = nil
}

// An Error is a JSON-RPC error object an upstream answered with.
type Error struct {
	Code    int64
	Message string
	Data    []byte // raw JSON, nil if absent
}

// ErrNoAnswer is returned by [ReadAnswer] when the response ended without
// answering the request.
var ErrNoAnswer = errors.New("the upstream's response ended without an answer to the request")

// A ProtocolError says that an upstream broke JSON-RPC or the transport's
// framing: invalid JSON, a message too large, an answer to another id.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// A Reader reads upstreams' answers, reusing its buffers from one answer
// to the next. It is safe for concurrent use; the zero value is not: use
// [NewReader].
type Reader struct {
	lim     Limits
	readers sync.Pool // *bufio.Reader
	bufs    sync.Pool // *[]byte
}

// NewReader returns a Reader that applies lim.
func NewReader(lim Limits) *Reader {
	if lim.MaxMessage <= 0 {
		lim.MaxMessage = DefaultMaxMessage
	}
	r := &Reader{lim: lim}
	r.readers.New = func() any { return bufio.NewReaderSize(nil, 16<<10) }
	r.bufs.New = func() any { b := make([]byte, 0, 4<<10); return &b }
	return r
}

// ReadAnswer reads the body of an upstream's HTTP response (status 200) to
// the request whose id is the string id: one JSON message, or an event
// stream (text/event-stream) that may carry other messages — notifications,
// requests of the upstream's own — before the answer. Each message is
// validated (jsonguard) before anything reads it; other receives the ones
// that are not the answer (nil: they are dropped). The body is not closed.
func (r *Reader) ReadAnswer(resp *http.Response, id string, other func(msg []byte, env jsonguard.Envelope)) (Answer, error) {
	lim := r.lim
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		buf := r.getBuf()
		b, err := readAll((*buf)[:0], resp.Body, resp.ContentLength, lim.MaxMessage)
		*buf = b
		if err != nil {
			r.putBuf(buf)
			return Answer{}, err
		}
		a, ok, err := answerIn(b, id, lim, other)
		if err != nil || !ok {
			r.putBuf(buf)
			if err == nil {
				err = ErrNoAnswer
			}
			return Answer{}, err
		}
		a.buf, a.from = buf, r
		return a, nil
	case "text/event-stream":
		return r.readStream(resp.Body, id, lim, other)
	}
	return Answer{}, protocolErrorf("the upstream answered with Content-Type %q, not application/json or text/event-stream", resp.Header.Get("Content-Type"))
}

// ParseAnswer reads msg, one message that must be the answer to the
// request whose id is the string id (a stdio server's response line, say),
// validated as ReadAnswer validates each message. The answer's Result
// points into msg; its Release does nothing.
func (r *Reader) ParseAnswer(msg []byte, id string) (Answer, error) {
	if len(msg) > r.lim.MaxMessage {
		return Answer{}, protocolErrorf("the upstream's message is over %d bytes", r.lim.MaxMessage)
	}
	a, ok, err := answerIn(msg, id, r.lim, nil)
	if err != nil {
		return Answer{}, err
	}
	if !ok {
		return Answer{}, ErrNoAnswer
	}
	return a, nil
}

// readAll reads r into dst, refusing more than max bytes. A body of
// known length is read into a buffer of that size; one of unknown length
// grows the buffer by doubling.
func readAll(dst []byte, r io.Reader, length int64, limit int) ([]byte, error) {
	if length > int64(limit) {
		return dst, protocolErrorf("the upstream's answer has %d bytes, more than the limit of %d", length, limit)
	}
	if length > 0 && int64(cap(dst)) < length+1 {
		dst = make([]byte, 0, length+1) // +1: the read that sees EOF
	}
	for {
		if len(dst) == cap(dst) {
			grown := make([]byte, len(dst), max(2*cap(dst), 32<<10))
			copy(grown, dst)
			dst = grown
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, protocolErrorf("the upstream's answer is larger than the limit of %d bytes", limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// answerIn validates one message and reports whether it is the answer to
// id; a message that is not is handed to other.
//
// The answer's envelope is read in one pass over its top-level members;
// its result's bytes are relayed inside an envelope the gateway writes,
// so only the result needs to be valid JSON (Check) — the envelope's own
// ambiguities cannot reach the client. Any other message is read by
// decoders as well, so it is checked as the client's messages are
// (jsonguard.CheckMessage: exact ids, no case-folded protocol keys).
func answerIn(msg []byte, id string, lim Limits, other func([]byte, jsonguard.Envelope)) (Answer, bool, error) {
	if err := jsonguard.Check(msg, jsonguard.Limits{MaxDepth: lim.MaxDepth}); err != nil {
		return Answer{}, false, protocolErrorf("the upstream sent invalid JSON-RPC: %v", err)
	}
	var (
		a                 Answer
		rawID, errObj     []byte
		request, hasError bool
	)
	err := jsonguard.Members(msg, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case "method":
			request = true
		case "id":
			rawID = m.Value
		case "result":
			a.Result = m.Value
		case "error":
			errObj, hasError = m.Value, true
		}
		return true
	})
	if err != nil {
		return Answer{}, false, protocolErrorf("the upstream sent invalid JSON-RPC: %v", err)
	}
	if request || (a.Result == nil && !hasError) {
		if err := jsonguard.CheckMessage(msg); err != nil {
			return Answer{}, false, protocolErrorf("the upstream sent invalid JSON-RPC: %v", err)
		}
		env, err := jsonguard.ParseEnvelope(msg)
		if err != nil {
			return Answer{}, false, protocolErrorf("the upstream sent invalid JSON-RPC: %v", err)
		}
		if other != nil {
			other(msg, env)
		}
		return Answer{}, false, nil
	}
	if got, ok := jsonguard.Unquote(rawID); !ok || got != id {
		// An answer to a request this stream did not carry.
		return Answer{}, false, protocolErrorf("the upstream answered request id %s, not %q", rawID, id)
	}
	if a.Result != nil && hasError {
		return Answer{}, false, protocolErrorf("the upstream's answer has both result and error")
	}
	if hasError {
		e, err := parseError(errObj)
		if err != nil {
			return Answer{}, false, protocolErrorf("the upstream sent invalid JSON-RPC: %v", err)
		}
		a.Error = e
	}
	return a, true, nil
}

// parseError reads a JSON-RPC error object.
func parseError(v []byte) (*Error, error) {
	e := &Error{}
	var code, message bool
	var bad error
	err := jsonguard.Members(v, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case "code":
			n, err := strconv.ParseInt(string(m.Value), 10, 64)
			if err != nil {
				bad = fmt.Errorf("error code %s is not an integer", m.Value)
				return false
			}
			e.Code, code = n, true
		case "message":
			s, ok := jsonguard.Unquote(m.Value)
			if !ok {
				bad = errors.New("error message is not a string")
				return false
			}
			e.Message, message = s, true
		case "data":
			e.Data = bytes.Clone(m.Value)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	if !code || !message {
		return nil, errors.New("error object without code or message")
	}
	return e, nil
}

// readStream reads an event stream until the answer to id. Events other
// than "message" (the only type MCP sends) are ignored, as are comments,
// ids and retry fields: this stream is read once, never resumed.
func (r *Reader) readStream(body io.Reader, id string, lim Limits, other func([]byte, jsonguard.Envelope)) (Answer, error) {
	br := r.readers.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() {
		br.Reset(nil)
		r.readers.Put(br)
	}()
	buf := r.getBuf()
	data := (*buf)[:0]
	var line []byte
	event := ""
	hasData := false
	for {
		var err error
		line, err = readLine(br, line[:0], lim.MaxMessage)
		if err != nil {
			*buf = data
			r.putBuf(buf)
			if err == io.EOF {
				return Answer{}, ErrNoAnswer
			}
			return Answer{}, err
		}
		if len(line) == 0 { // end of an event
			// An event without data — a server primes the client for
			// resumption with an id and an empty data line — carries no
			// message.
			if hasData && (event == "" || event == "message") && len(bytes.TrimSpace(data)) > 0 {
				a, ok, err := answerIn(data, id, lim, other)
				if err != nil {
					*buf = data
					r.putBuf(buf)
					return Answer{}, err
				}
				if ok {
					*buf = data
					a.buf, a.from = buf, r
					return a, nil
				}
			}
			data, event, hasData = data[:0], "", false
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
			if len(data) > lim.MaxMessage {
				*buf = data
				r.putBuf(buf)
				return Answer{}, protocolErrorf("an event of the upstream's stream is larger than the limit of %d bytes", lim.MaxMessage)
			}
		case "event":
			event = string(value)
		}
	}
}

// readLine reads one line (without its \n or \r\n) into dst.
func readLine(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		dst = append(dst, frag...)
		if len(dst) > max+2 {
			return nil, protocolErrorf("a line of the upstream's stream is longer than the limit of %d bytes", max)
		}
		switch err {
		case nil:
			dst = dst[:len(dst)-1]
			if n := len(dst); n > 0 && dst[n-1] == '\r' {
				dst = dst[:n-1]
			}
			return dst, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(dst) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

func (r *Reader) getBuf() *[]byte { return r.bufs.Get().(*[]byte) }

// putBuf keeps buffers of up to 16 MiB for reuse (a pool holds them only
// until the next garbage collections); larger ones go to the collector at
// once rather than pinning memory.
func (r *Reader) putBuf(b *[]byte) {
	if cap(*b) > 16<<20 {
		return
	}
	*b = (*b)[:0]
	r.bufs.Put(b)
}
