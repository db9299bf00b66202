package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
)

// framingHeader is the header FramingListener puts in a request whose
// framing it found ambiguous; its value says why. A client cannot set it:
// a request that carries it is itself marked.
const framingHeader = "X-Mcpedge-Framing-Error"

// FramingListener returns ln with every accepted connection checked for
// request framing that net/http accepts although RFC 9112 says it must not
// be trusted:
//
//   - Content-Length together with Transfer-Encoding: net/http drops the
//     Content-Length, reads the body chunked and keeps the connection open;
//     RFC 9112 §6.3 requires the connection to be closed, as a proxy in
//     front may have framed the request by its Content-Length (request
//     smuggling);
//   - Transfer-Encoding in an HTTP/1.0 request: net/http ignores it; RFC
//     9112 §6.1 calls the framing faulty;
//   - obsolete line folding in a header (RFC 9112 §5.2).
//
// and, so that their refusal says what was wrong (net/http answers a bare
// "400 Bad Request" or 501), what net/http refuses itself: Content-Length
// headers with different values or a value that is not a decimal number,
// a Transfer-Encoding other than one "chunked".
//
// Such a request reaches the handler without its body and with
// framingHeader set; Gateway.Handler refuses it (400) and the connection
// ends after the answer.
//
// The listener tracks each request's body (by Content-Length or chunk
// sizes) to find where the next request's headers start; it passes every
// byte of well-framed requests on unchanged.
//
// maxHeaderBytes is the server's http.Server.MaxHeaderBytes (0: the
// default). A header block is held until it is complete, and handed on as
// soon as it is longer than net/http accepts (which then refuses it with
// 431), so a connection never holds more than net/http would.
func FramingListener(ln net.Listener, maxHeaderBytes int) net.Listener {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	// net/http allows 4096 bytes beyond MaxHeaderBytes, and on a reused
	// connection up to 4096 more may already sit in its read buffer
	// (uncounted) when it starts counting: a block longer than that sum
	// is refused whatever the connection's history.
	return framingListener{ln, maxHeaderBytes + 2*4096 + 1}
}

type framingListener struct {
	net.Listener
	limit int
}

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c, br: bufio.NewReaderSize(c, 4096), limit: l.limit}, nil
}

const (
	fsHeader    = iota // reading a header block
	fsBody             // passing remaining bytes of a Content-Length body
	fsChunkSize        // reading a chunk-size line
	fsChunkData        // passing remaining bytes of chunk data and its CRLF
	fsTrailer          // reading trailer lines after the last chunk
	// fsEnd: no more bytes on this connection. net/http refuses the
	// request (or its body) it has been given, or it was marked.
	fsEnd
)

// framingConn is one connection seen through FramingListener. Read is
// resumable: a read deadline (net/http aborts its background read with
// one) may interrupt it anywhere, and the next Read continues.
type framingConn struct {
	net.Conn
	br        *bufio.Reader
	state     int
	remaining int64  // fsBody, fsChunkData
	line      []byte // the header block or line being read
	lineStart int    // offset of the current line in line
	out       []byte // checked bytes not yet returned
	limit     int    // longest header block or line held
}

// NetConn returns the connection under the check (a *tls.Conn with
// [server.tls]), as tls.Conn.NetConn does.
func (c *framingConn) NetConn() net.Conn { return c.Conn }

// CloseWrite passes net/http's half close on (it sends its answer's FIN
// before waiting to close a connection it stops reading, such as after a
// marked request); without it net/http waits half a second, then closes.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *framingConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		switch c.state {
		case fsEnd:
			return 0, io.EOF
		case fsBody, fsChunkData:
			if c.remaining == 0 {
				if c.state == fsBody {
					c.state = fsHeader
				} else {
					c.state = fsChunkSize
				}
				continue
			}
			if int64(len(p)) > c.remaining {
				p = p[:c.remaining]
			}
			n, err := c.br.Read(p)
			c.remaining -= int64(n)
			return n, err
		default:
			if err := c.readLine(); err != nil {
				return 0, err
			}
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// readLine reads one more line of a header block, chunk-size line or
// trailer, and acts on it once it is complete.
func (c *framingConn) readLine() error {
	for {
		b, err := c.br.ReadSlice('\n')
		c.line = append(c.line, b...)
		if len(c.line) > c.limit {
			// Longer than net/http accepts: hand over what there is, for
			// net/http to refuse, and end the connection.
			c.out, c.line, c.state = c.line, nil, fsEnd
			return nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if err == io.EOF && len(c.line) > 0 {
				// Hand over the incomplete data: net/http reports it.
				c.out, c.line, c.lineStart = c.line, nil, 0
				return nil
			}
			return err
		}
		break
	}
	line := c.line[c.lineStart:]
	empty := len(bytes.TrimRight(line, "\r\n")) == 0
	switch c.state {
	case fsHeader:
		if !empty {
			c.lineStart = len(c.line)
			return nil
		}
		if c.lineStart == 0 {
			// An empty line before the request line: net/http treats it
			// as a malformed request line.
			c.out, c.line = c.line, nil
			return nil
		}
		c.headerBlock()
	case fsChunkSize:
		size, ok := chunkSize(line)
		c.out, c.line, c.lineStart = c.line, nil, 0
		switch {
		case !ok:
			// Not a chunk size: net/http's chunked reader fails on it,
			// or on the end of the connection after it, and closes.
			c.state = fsEnd
		case size == 0:
			c.state = fsTrailer
		default:
			c.state, c.remaining = fsChunkData, size+2
		}
	case fsTrailer:
		c.out, c.line, c.lineStart = c.line, nil, 0
		if empty {
			c.state = fsHeader
		}
	}
	return nil
}

// headerBlock decides the framing of the complete header block in c.line.
func (c *framingConn) headerBlock() {
	block := c.line
	c.line, c.lineStart = nil, 0
	lines := bytes.SplitAfter(block, []byte("\n"))
	reqLine := lines[0]
	http10 := bytes.HasSuffix(bytes.TrimRight(reqLine, "\r\n"), []byte("HTTP/1.0"))
	var (
		cls, tes int
		cl       []byte
		clBad    bool
		te       []byte
		why      string
	)
	for _, l := range lines[1:] {
		t := bytes.TrimRight(l, "\r\n")
		if len(t) == 0 {
			continue
		}
		if t[0] == ' ' || t[0] == '\t' {
			why = "a header is continued on a folded line (obsolete line folding)"
			continue
		}
		name, value, ok := bytes.Cut(t, []byte(":"))
		if !ok {
			continue // net/http refuses the line
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, []byte("Content-Length")):
			if cls > 0 && !bytes.Equal(value, cl) {
				clBad = true
			}
			cls++
			cl = value
		case asciiEqualFold(name, []byte("Transfer-Encoding")):
			tes++
			te = value
		case asciiEqualFold(name, []byte(framingHeader)):
			why = "the client sent the reserved header " + framingHeader
		}
	}
	var clN int64
	switch {
	case why != "":
	case tes > 0 && cls > 0:
		why = "both Content-Length and Transfer-Encoding are present"
	case tes > 0 && http10:
		why = "Transfer-Encoding in an HTTP/1.0 request"
	case tes > 1:
		why = "Transfer-Encoding occurs " + strconv.Itoa(tes) + " times"
	case tes == 1 && !asciiEqualFold(te, []byte("chunked")):
		why = "Transfer-Encoding " + quoteShort(te) + " is not supported, only chunked"
	case clBad:
		why = "Content-Length headers with different values"
	case cls > 0:
		var err error
		clN, err = strconv.ParseInt(string(cl), 10, 64)
		if err != nil || clN < 0 || len(cl) == 0 || cl[0] < '0' || cl[0] > '9' {
			why = "Content-Length " + quoteShort(cl) + " is not a decimal number"
		}
	}
	if why != "" {
		// Hand net/http the request without its body and with the reason,
		// and end the connection after it.
		var b bytes.Buffer
		b.Write(reqLine)
		for _, l := range lines[1:] {
			t := bytes.TrimRight(l, "\r\n")
			name, _, _ := bytes.Cut(t, []byte(":"))
			if len(t) == 0 || t[0] == ' ' || t[0] == '\t' || asciiEqualFold(name, []byte("Content-Length")) ||
				asciiEqualFold(name, []byte("Transfer-Encoding")) || asciiEqualFold(name, []byte(framingHeader)) {
				continue
			}
			b.Write(t)
			b.WriteString("\r\n")
		}
		b.WriteString(framingHeader + ": " + why + "\r\nContent-Length: 0\r\n\r\n")
		c.out, c.state = b.Bytes(), fsEnd
		return
	}
	c.out = block
	switch {
	case tes > 0:
		c.state = fsChunkSize
	case cls > 0:
		c.state, c.remaining = fsBody, clN
	default:
		c.state = fsHeader
	}
}

// chunkSize parses a chunk-size line (hex digits, optional extensions).
func chunkSize(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line), 16, 64)
	if err != nil || n < 0 || line[0] == '+' || line[0] == '-' {
		return 0, false
	}
	return n, true
}

// asciiEqualFold is bytes.EqualFold for ASCII only, as net/http compares
// header names and "chunked": Unicode folding would take "\u212a" (Kelvin
// sign) for "k" and "\u017f" (long s) for "s".
func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// quoteShort quotes a header value for a reason, at most 64 bytes of it:
// quoting can make a value four times longer, and the marked request must
// stay within what net/http accepts.
func quoteShort(v []byte) string {
	if len(v) > 64 {
		return strconv.Quote(string(v[:64])) + "..."
	}
	return strconv.Quote(string(v))
}
