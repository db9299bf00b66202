package upstream

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// testResolver is a DNS resolver the test controls, with no network: Go's
// own resolver, whose connections to "the name server" are in-memory pipes
// to a responder that answers A and AAAA queries from names. Names it does
// not know are NXDOMAIN. It counts the queries it answered per name.
type testResolver struct {
	*net.Resolver
	mu      sync.Mutex
	names   map[string]netip.Addr // lower case, without the final dot
	queries map[string]int
}

func newTestResolver(names map[string]string) *testResolver {
	r := &testResolver{names: map[string]netip.Addr{}, queries: map[string]int{}}
	for n, a := range names {
		r.names[strings.ToLower(n)] = netip.MustParseAddr(a)
	}
	r.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go r.serve(server)
			return client, nil // not a PacketConn: the resolver frames messages as over TCP
		},
	}
	return r
}

// set changes what a name resolves to (a rebinding).
func (r *testResolver) set(name, addr string) {
	r.mu.Lock()
	r.names[strings.ToLower(name)] = netip.MustParseAddr(addr)
	r.mu.Unlock()
}

func (r *testResolver) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queries[strings.ToLower(name)]
}

func (r *testResolver) serve(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		a := r.answer(q)
		if a == nil {
			return
		}
		binary.BigEndian.PutUint16(l[:], uint16(len(a)))
		if _, err := c.Write(append(l[:], a...)); err != nil {
			return
		}
	}
}

// answer builds the response to one query: its header and question, and
// one answer record when the name has an address of the asked type.
func (r *testResolver) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var labels []string
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, "."))

	r.mu.Lock()
	addr, known := r.names[name]
	r.queries[name]++
	r.mu.Unlock()

	var rr []byte
	switch {
	case known && qtype == 1 && addr.Is4():
		b := addr.As4()
		rr = b[:]
	case known && qtype == 28 && addr.Is6():
		b := addr.As16()
		rr = b[:]
	}
	out := make([]byte, 12, 12+len(question)+16+len(rr))
	copy(out[0:2], q[0:2])                             // id
	flags := uint16(0x8000 | 0x0400 | 0x0100 | 0x0080) // response, authoritative, RD, RA
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(out[2:4], flags)
	binary.BigEndian.PutUint16(out[4:6], 1) // one question
	if rr != nil {
		binary.BigEndian.PutUint16(out[6:8], 1) // one answer
	}
	out = append(out, question...)
	if rr != nil {
		out = append(out, 0xc0, 12) // the name: a pointer to the question's
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // class IN
		out = binary.BigEndian.AppendUint32(out, 0) // TTL: ask again every time
		out = binary.BigEndian.AppendUint16(out, uint16(len(rr)))
		out = append(out, rr...)
	}
	return out
}
