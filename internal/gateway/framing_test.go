package gateway

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
)

// wellFramed is a pipeline of requests net/http and FramingListener both
// accept: the listener must hand every byte on unchanged, however the
// bytes are split by the network and however net/http reads them.
const wellFramed = "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\n\r\n{\"a\":1}" +
	"POST /mcp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n" +
	"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nxyz" +
	"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" +
	"POST /x HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"

// framedRead feeds data to a framingConn in random pieces and returns what
// it hands on.
func framedRead(t *testing.T, data string, seed uint64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	client, server := net.Pipe()
	go func() {
		b := []byte(data)
		for len(b) > 0 {
			n := 1 + r.IntN(min(len(b), 40))
			if _, err := client.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		client.Close()
	}()
	fc := &framingConn{Conn: server, br: bufio.NewReaderSize(server, 4096), limit: 1 << 16}
	var out bytes.Buffer
	buf := make([]byte, 64)
	for {
		n, err := fc.Read(buf[:1+rand.IntN(len(buf))])
		out.Write(buf[:n])
		if err == io.EOF {
			return out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFramingPassesWellFramedRequests(t *testing.T) {
	for seed := range uint64(200) {
		if got := framedRead(t, wellFramed, seed); got != wellFramed {
			t.Fatalf("seed %d: bytes changed:\n%q\nwant\n%q", seed, got, wellFramed)
		}
	}
	// And net/http reads five requests from them.
	br := bufio.NewReader(strings.NewReader(framedRead(t, wellFramed, 1)))
	for i := range 5 {
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			t.Fatalf("request %d body: %v", i+1, err)
		}
	}
}

// A marked request ends the connection: what follows it is never handed
// on, and the request itself carries no body and the reason.
func TestFramingMarksAndEnds(t *testing.T) {
	for _, c := range []struct{ name, req, why string }{
		{"CL and TE", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"TE and CL", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n", "both Content-Length and Transfer-Encoding"},
		{"HTTP/1.0 TE", "POST /mcp HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"},
		{"gzip", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "only chunked"},
		{"two TE", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "occurs 2 times"},
		{"differing CL", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "different values"},
		{"signed CL", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", "not a decimal number"},
		{"folded", "POST /mcp HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", "folded"},
		{"marker", "POST /mcp HTTP/1.1\r\nHost: h\r\nX-Mcpedge-Framing-Error: none\r\n\r\n", "reserved header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			smuggled := "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
			out := framedRead(t, c.req+"0\r\n\r\n"+smuggled, 7)
			if strings.Contains(out, "smuggled") {
				t.Fatalf("bytes after the marked request were handed on: %q", out)
			}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(out)))
			if err != nil {
				t.Fatalf("%v in %q", err, out)
			}
			if got := req.Header.Get(framingHeader); !strings.Contains(got, c.why) {
				t.Fatalf("%s = %q, want %q", framingHeader, got, c.why)
			}
			if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
				t.Fatalf("marked request keeps a body: %d %v", req.ContentLength, req.TransferEncoding)
			}
		})
	}
}

// net/http half-closes a connection it stops reading (after a refusal)
// and then waits before closing it; framingConn passes the half close on,
// so the client sees the end of the answer at once.
func TestFramingConnCloseWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fl := FramingListener(ln, 0)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := fl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("framingConn hides CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}
