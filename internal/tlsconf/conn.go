package tlsconf

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// The gateway reads requests through gateway.FramingListener, which wraps
// each connection; net/http then no longer sees a *tls.Conn, does the
// handshake implicitly at the first read and leaves Request.TLS nil.
// ConnContext and WithConnState give the handlers Request.TLS back.

type connKey struct{}

// ConnContext is an http.Server ConnContext: it remembers the *tls.Conn
// under c (unwrapping connections that offer NetConn) in the connection's
// context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if tc, ok := c.(*tls.Conn); ok {
			return context.WithValue(ctx, connKey{}, tc)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// WithConnState sets Request.TLS, when net/http left it nil, from the
// connection ConnContext remembered. By the time a request has been read
// its connection's handshake is complete.
func WithConnState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if tc, ok := r.Context().Value(connKey{}).(*tls.Conn); ok {
				st := tc.ConnectionState()
				if st.HandshakeComplete {
					r2 := r.WithContext(r.Context())
					r2.TLS = &st
					r = r2
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
