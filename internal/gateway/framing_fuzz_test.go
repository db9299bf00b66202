package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzFramingConn feeds arbitrary bytes through a framingConn and checks
// what must hold for any input:
//
//   - Read neither panics nor hangs (every read is bounded by a deadline),
//     and a read interrupted by a deadline loses nothing;
//   - the conn holds at most its header limit plus one read buffer;
//   - what it hands on is the input unchanged, or a prefix of it that ends
//     at a request boundary followed by one marked request (no body, the
//     marker, no folded or framing headers), after which nothing follows;
//   - net/http, reading what it hands on, never gets a request with
//     ambiguous framing that is not marked, nor refuses framing that the
//     listener should have marked with its reason;
//   - a pipeline of well-framed requests generated from the same bytes
//     passes unchanged and in order;
//   - (for some inputs) a real net/http server behind FramingListener
//     never answers a request that follows a marked one.
//
// splits chooses where the input is cut into writes and how large each
// read is; limit chooses the header limit; mode chooses the generator's
// variations and whether the real server is used.
func FuzzFramingConn(f *testing.F) {
	const (
		h   = "Host: h\r\n"
		sm  = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
		big = 1 << 13
	)
	seeds := []string{
		wellFramed,
		"",
		"\r\n",
		"\n\nGET / HTTP/1.1\r\n" + h + "\r\n",
		// CL and TE, both orders, and with TE first in a pipeline.
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + sm,
		"GET / HTTP/1.1\r\n" + h + "\r\nPOST / HTTP/1.1\r\n" + h + "transfer-encoding: chunked\r\nCONTENT-LENGTH: 3\r\n\r\n0\r\n\r\n" + sm,
		// TE on HTTP/1.0.
		"POST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + sm,
		// Obsolete line folding, also of a framing header.
		"GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "X: a\r\n\tTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + sm,
		"GET / HTTP/1.1\r\n Host: h\r\n\r\n" + sm,
		// Duplicate Content-Length: equal, different, listed.
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 39\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 3, 3\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 03\r\nContent-Length: 3\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length:\r\n\r\n" + sm,
		// Signed, negative, overflowing, hexadecimal, spaced lengths.
		"POST / HTTP/1.1\r\n" + h + "Content-Length: +3\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 9223372036854775807\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 0x3\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 1 2\r\n\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length :3\r\n\r\nabc" + sm,
		// Transfer-Encoding variants.
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:  CHUNKED \t\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chun\u212aed\r\n\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Tran\u017ffer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc" + sm,
		// Chunk extensions, trailers, bad chunk lines.
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;a=b;c=\"d;e\"\r\nabc\r\n0;x\r\nT: 1\r\nU: 2\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3 \t;a\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r \nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\r\n" + sm,
		// Huge, negative, overflowing, signed chunk sizes.
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nabc" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n000000000000003\r\nabc\r\n0\r\n\r\n" + sm,
		// LF-only line endings, in headers, chunk lines and trailers.
		"POST / HTTP/1.1\nHost: h\nContent-Length: 3\n\nabcGET / HTTP/1.1\nHost: h\n\n",
		"POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\n" + sm,
		"POST / HTTP/1.0\nHost: h\nTransfer-Encoding: chunked\n\n0\n\n" + sm,
		"POST / HTTP/1.0\r\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + sm,
		"GET / HTTP/1.1\r\n" + h + "\r\r\n" + sm,
		// Pipelined requests, with the marker sent by the client.
		"GET /a HTTP/1.1\r\n" + h + "\r\nGET /b HTTP/1.1\r\n" + h + "Content-Length: 2\r\n\r\nxyGET /c HTTP/1.1\r\n" + h + "\r\n",
		"GET / HTTP/1.1\r\n" + h + "x-mcpedge-framing-error: none\r\n\r\n" + sm,
		"GET / HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\nGET / HTTP/1.1\r\n" + h + "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n" + sm,
		// Header blocks and lines at and beyond the limit.
		"GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("a", big) + "\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;" + strings.Repeat("e", big) + "\r\nabc\r\n0\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: " + strings.Repeat("t", big) + "\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: " + strings.Repeat("\x00", big/2) + "\r\n\r\n" + sm,
		"POST / HTTP/1.1\r\n" + h + "Content-Length: " + strings.Repeat("\xff", big/2) + "\r\n\r\n" + sm,
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i), 3, 200, 17, 1, 64}, uint16(1<<15+i), byte(i))
		f.Add([]byte(s), []byte(nil), uint16(i*37), byte(i*4))
	}

	srv := startFramingServer(f)
	f.Fuzz(func(t *testing.T, data, splits []byte, limit uint16, mode byte) {
		lim := 16 + int(limit)
		out := checkAnyInput(t, data, splits, lim)
		checkWithNetHTTP(t, out, lim)
		wf := wellFramedFrom(data, mode)
		if got := framingRead(t, wf, splits, 1<<16).out; !bytes.Equal(got, wf) {
			t.Fatalf("well-framed requests changed:\n%q\nwant\n%q", got, wf)
		}
		if mode%4 == 0 {
			srv.check(t, data, splits)
		}
	})
}

type framingResult struct {
	out   []byte
	endAt int // bytes handed on before the conn ended itself; -1: it did not
	limit int
}

// framingRead passes data through a framingConn over a net.Pipe, written
// and read in pieces chosen by splits, some reads interrupted by an
// expired deadline.
func framingRead(t *testing.T, data, splits []byte, limit int) framingResult {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		b := data
		for i := 0; len(b) > 0; i++ {
			n := len(b)
			if len(splits) > 0 {
				n = min(n, 1+int(splits[i%len(splits)])%97)
			}
			if _, err := client.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	fc := &framingConn{Conn: server, br: bufio.NewReaderSize(server, 4096), limit: limit}
	deadline := time.Now().Add(5 * time.Second)
	res := framingResult{endAt: -1, limit: limit}
	buf := make([]byte, 1<<14)
	for i := 0; ; i++ {
		size := len(buf)
		var s byte
		if len(splits) > 0 {
			s = splits[(i*7+3)%len(splits)]
			size = 1 + int(s)%67
			if s%5 == 0 {
				size = len(buf)
			}
		}
		expire := s >= 0xf0 && i%2 == 1 // every other read at most: progress
		if expire {
			// An expired deadline, as net/http's background read gets:
			// the next Read must go on where this one stopped.
			server.SetReadDeadline(time.Now().Add(-time.Second))
		} else {
			server.SetReadDeadline(deadline)
		}
		before := len(res.out)
		streamed := len(fc.out) == 0 && (fc.state == fsBody || fc.state == fsChunkData) && fc.remaining > 0
		n, err := fc.Read(buf[:size])
		if n < 0 || n > size {
			t.Fatalf("Read returned %d for a buffer of %d", n, size)
		}
		res.out = append(res.out, buf[:n]...)
		if fc.state == fsEnd && res.endAt < 0 {
			res.endAt = before
		}
		// Held before this Read handed bytes on: at most the header limit,
		// one read of the buffer beyond it, the buffer, and a marker line.
		held := len(fc.line) + len(fc.out) + fc.br.Buffered()
		if !streamed {
			held += n
		}
		if held > limit+2*4096+512 {
			t.Fatalf("conn holds %d bytes, limit %d", held, limit)
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && expire && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(res.out), err)
		}
	}
	// The end is sticky.
	server.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := fc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF: %d, %v", n, err)
	}
	return res
}

// checkAnyInput checks the invariants that hold whatever data is and
// returns what the conn handed on.
func checkAnyInput(t *testing.T, data, splits []byte, limit int) []byte {
	t.Helper()
	r := framingRead(t, data, splits, limit)
	out := r.out
	if bytes.HasPrefix(data, out) {
		return out
	}
	// Not a prefix: the conn marked a request. What came before it is
	// the input unchanged, and the marked request is the last thing.
	if r.endAt < 0 || !bytes.Equal(out[:r.endAt], data[:r.endAt]) {
		t.Fatalf("bytes changed without a marked request (end at %d):\n%q\nfrom\n%q", r.endAt, out, data)
	}
	checkMarked(t, out[r.endAt:], data[r.endAt:])
	return out
}

// checkMarked checks a marked request against the input it replaces.
func checkMarked(t *testing.T, marked, in []byte) {
	t.Helper()
	suffix := "\r\nContent-Length: 0\r\n\r\n"
	if !bytes.HasSuffix(marked, []byte(suffix)) {
		t.Fatalf("marked request does not end with %q: %q", suffix, marked)
	}
	lines := bytes.SplitAfter(marked[:len(marked)-len(suffix)+2], []byte("\n"))
	lines = lines[:len(lines)-1] // the empty piece after the last \n
	inLines := bytes.SplitAfter(in, []byte("\n"))
	if !bytes.Equal(lines[0], inLines[0]) {
		t.Fatalf("marked request line %q, was %q", lines[0], inLines[0])
	}
	last := bytes.TrimSuffix(lines[len(lines)-1], []byte("\r\n"))
	if len(lines) < 2 || !bytes.HasPrefix(last, []byte(framingHeader+": ")) {
		t.Fatalf("marked request has no %s line last: %q", framingHeader, marked)
	}
	if len(last) > 512 {
		t.Fatalf("marker line is %d bytes long", len(last))
	}
	j := 1 // kept header lines come from the input's block, in order
	for _, l := range lines[1 : len(lines)-1] {
		if !bytes.HasSuffix(l, []byte("\r\n")) {
			t.Fatalf("marked request line %q does not end in CRLF", l)
		}
		v := bytes.TrimSuffix(l, []byte("\r\n"))
		name, _, _ := bytes.Cut(v, []byte(":"))
		if len(v) == 0 || v[0] == ' ' || v[0] == '\t' || bytes.IndexByte(v, '\n') >= 0 {
			t.Fatalf("marked request keeps line %q", l)
		}
		for _, n := range []string{"Content-Length", "Transfer-Encoding", framingHeader} {
			if asciiFold(string(name)) == asciiFold(n) {
				t.Fatalf("marked request keeps header %q", l)
			}
		}
		for ; j < len(inLines) && !bytes.Equal(bytes.TrimRight(inLines[j], "\r\n"), v); j++ {
		}
		if j == len(inLines) {
			t.Fatalf("marked request line %q is not from the input, or out of order", l)
		}
		j++
	}
}

func asciiFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// checkWithNetHTTP reads what the conn handed on as net/http's server
// does (request, then its whole body, then the next) and checks every
// request it gets: one with ambiguous framing is marked, a marked one is
// the last, and framing net/http refuses was marked instead.
func checkWithNetHTTP(t *testing.T, out []byte, limit int) {
	t.Helper()
	rd := bytes.NewReader(out)
	br := bufio.NewReader(rd)
	offset := func() int { return len(out) - rd.Len() - br.Buffered() }
	for {
		start := offset()
		req, err := http.ReadRequest(br)
		if err != nil {
			msg := err.Error()
			framing := strings.HasPrefix(msg, "invalid Content-Length") || strings.HasPrefix(msg, "invalid empty Content-Length") ||
				strings.Contains(msg, "multiple Content-Length headers") ||
				strings.HasPrefix(msg, "unsupported transfer encoding") || strings.HasPrefix(msg, "too many transfer encodings")
			if framing && len(out)-start <= limit {
				t.Fatalf("net/http refuses unmarked framing (%v):\n%q", err, out[start:])
			}
			return
		}
		block := out[start:offset()]
		if req.Header.Get(framingHeader) != "" {
			if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
				t.Fatalf("marked request keeps a body: %d %v", req.ContentLength, req.TransferEncoding)
			}
			if rest := len(out) - offset(); rest != 0 {
				t.Fatalf("%d bytes handed on after a marked request: %q", rest, out[offset():])
			}
			return
		}
		if why := ambiguousFraming(block, req); why != "" {
			t.Fatalf("unmarked request with %s:\n%q", why, block)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
	}
}

// ambiguousFraming says what RFC 9112 does not let a server trust in the
// raw header block of req, as net/http itself does not refuse.
func ambiguousFraming(block []byte, req *http.Request) string {
	lines := bytes.SplitAfter(block, []byte("\n"))
	for _, l := range lines[1:] {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return "obsolete line folding"
		}
	}
	_, rest, _ := bytes.Cut(block, []byte("\n"))
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(rest))).ReadMIMEHeader()
	if err != nil {
		return "a header block net/http reads but textproto does not: " + err.Error()
	}
	_, cl := hdr["Content-Length"]
	te, hasTE := hdr["Transfer-Encoding"]
	switch {
	case cl && hasTE:
		return "Content-Length and Transfer-Encoding"
	case hasTE && !req.ProtoAtLeast(1, 1):
		return "Transfer-Encoding in " + req.Proto
	case len(te) > 1:
		return "repeated Transfer-Encoding"
	}
	return ""
}

// wellFramedFrom builds a pipeline of requests that net/http and RFC 9112
// both frame the same way, with bodies, chunk sizes, extensions, trailers
// and line endings taken from b.
func wellFramedFrom(b []byte, mode byte) []byte {
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	take := func(n int) []byte {
		n = min(n, len(b))
		p := b[:n]
		b = b[n:]
		return p
	}
	var w bytes.Buffer
	for n := 0; n < 1+int(mode>>4)%6 && (n == 0 || len(b) > 0); n++ {
		c := next()
		eol := "\r\n"
		if c&1 != 0 {
			eol = "\n"
		}
		version := "HTTP/1.1"
		if c&2 != 0 {
			version = "HTTP/1.0"
		}
		fmt.Fprintf(&w, "POST /r%d %s%s", n, version, eol)
		w.WriteString("Host: h" + eol)
		if c&4 != 0 {
			w.WriteString("X-Other: a, b" + eol)
		}
		switch {
		case c&24 == 8 && version == "HTTP/1.1":
			tes := []string{"chunked", "Chunked", "CHUNKED"}
			fmt.Fprintf(&w, "transfer-encoding: %s%s%s", tes[int(c>>5)%3], eol, eol)
			for k := 0; k < 4; k++ {
				size := int(next()) % 40
				if k == 3 || len(b) == 0 {
					size = 0
				}
				fmt.Fprintf(&w, "%x", size)
				if c&32 != 0 {
					w.WriteString(";ext=\"v\"")
				}
				w.WriteString("\r\n")
				if size == 0 {
					break
				}
				body := take(size)
				w.Write(body)
				w.Write(bytes.Repeat([]byte("."), size-len(body)))
				w.WriteString("\r\n")
			}
			if c&64 != 0 {
				w.WriteString("Trailer-One: 1\r\n")
			}
			w.WriteString("\r\n")
		case c&24 == 16 || c&24 == 8:
			size := int(next()) % 50
			fmt.Fprintf(&w, "Content-Length: %d%s", size, eol)
			if c&128 != 0 {
				fmt.Fprintf(&w, "content-length: %d%s", size, eol)
			}
			w.WriteString(eol)
			body := take(size)
			w.Write(body)
			w.Write(bytes.Repeat([]byte("."), size-len(body)))
		default:
			w.WriteString(eol)
		}
	}
	return w.Bytes()
}

// framingServer is a net/http server behind FramingListener whose handler
// records, per connection, which requests it answered.
type framingServer struct {
	addr  string
	mu    sync.Mutex
	conns map[string]*[]bool // client address: marked, per request answered
}

type framingConnKey struct{}

func startFramingServer(f *testing.F) *framingServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := &framingServer{addr: ln.Addr().String(), conns: map[string]*[]bool{}}
	hs := &http.Server{
		MaxHeaderBytes:    4096,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			rec := new([]bool)
			s.mu.Lock()
			s.conns[c.RemoteAddr().String()] = rec
			s.mu.Unlock()
			return context.WithValue(ctx, framingConnKey{}, rec)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := r.Context().Value(framingConnKey{}).(*[]bool)
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			marked := r.Header.Get(framingHeader) != ""
			s.mu.Lock()
			*rec = append(*rec, marked)
			s.mu.Unlock()
			if marked {
				w.Header().Set("Connection", "close")
				http.Error(w, "bad framing", http.StatusBadRequest)
				return
			}
			io.WriteString(w, "ok")
		}),
	}
	go hs.Serve(FramingListener(ln, hs.MaxHeaderBytes))
	f.Cleanup(func() { hs.Close() })
	return s
}

// check sends data on a connection of its own and checks that no request
// after a marked one was answered.
func (s *framingServer) check(t *testing.T, data, splits []byte) {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetLinger(0) // no TIME_WAIT pile-up while fuzzing
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		b := data
		for i := 0; len(b) > 0; i++ {
			n := len(b)
			if len(splits) > 0 {
				n = min(n, 1+int(splits[i%len(splits)])*16)
			}
			if _, err := tc.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		tc.CloseWrite()
	}()
	resp, err := io.ReadAll(tc)
	if err != nil && !isConnReset(err) {
		t.Fatalf("server did not end the connection: %v (answered %q)", err, resp)
	}
	s.mu.Lock()
	rec := s.conns[tc.LocalAddr().String()]
	delete(s.conns, tc.LocalAddr().String())
	s.mu.Unlock()
	if rec == nil {
		return // the server may see the reset before it accepts
	}
	s.mu.Lock()
	answered := append([]bool(nil), (*rec)...)
	s.mu.Unlock()
	for i, marked := range answered {
		if marked && i != len(answered)-1 {
			t.Fatalf("server answered %d requests after a marked one: %v", len(answered)-1-i, answered)
		}
	}
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
