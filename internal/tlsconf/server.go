package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"golang.org/x/crypto/acme"
)

// DefaultPollEvery is how often certificate and CA files are checked for
// changes.
const DefaultPollEvery = 5 * time.Second

// modernSuites are the TLS 1.2 cipher suites offered with min_version =
// "1.2": ECDHE key exchange (forward secrecy) and AEAD ciphers only. TLS
// 1.3's suites are not configurable and all are modern.
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Options configure a [Server].
type Options struct {
	// DataDir is server.data_dir: ACME keeps its account key and
	// certificates in <DataDir>/acme.
	DataDir string
	Log     *slog.Logger
	Metrics *Metrics
	// PollEvery is how often the files are checked for changes (0:
	// DefaultPollEvery).
	PollEvery time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// A Server is the TLS of the gateway's listener: it hands each handshake
// the configuration in force, so certificate files that change, a CA
// bundle that changes and a reloaded [server.tls] take effect on the next
// connection without a restart. Open connections keep the certificate
// they were made with.
type Server struct {
	o    Options
	acme *acmeManager // nil: certificates come from files

	mu sync.Mutex // serialises Apply and the file checks
	st atomic.Pointer[state]
	// failed is the stamp of files that last failed to load: they are
	// not retried (nor the failure logged again) until they change.
	failed string
}

// state is one loaded [server.tls]; it is immutable once stored.
type state struct {
	cfg       config.TLS
	cert      *tls.Certificate // nil with ACME
	certStamp string
	caStamp   string
	conf      *tls.Config
}

// New loads cfg (which must be Enabled). Errors say which file is wrong
// and how.
func New(cfg config.TLS, o Options) (*Server, error) {
	if !cfg.Enabled() {
		return nil, errors.New("tlsconf: [server.tls] has neither cert_file nor [server.tls.acme]")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PollEvery <= 0 {
		o.PollEvery = DefaultPollEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o}
	if cfg.ACME.Enabled() {
		m, err := newACME(cfg.ACME, o)
		if err != nil {
			return nil, err
		}
		s.acme = m
	}
	st, err := s.load(cfg)
	if err != nil {
		return nil, err
	}
	s.st.Store(st)
	s.announce(st)
	return s, nil
}

// Config is the *tls.Config of the listener: every handshake gets the
// configuration in force at that moment.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: s.forClient,
	}
}

// Listener wraps ln so that its connections speak TLS.
func (s *Server) Listener(ln net.Listener) net.Listener { return tls.NewListener(ln, s.Config()) }

func (s *Server) forClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	st := s.st.Load()
	if s.acme != nil && slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		// An ACME CA validating a TLS-ALPN-01 challenge: it presents no
		// client certificate, whatever client_auth says.
		return s.acme.challengeConfig, nil
	}
	return st.conf, nil
}

// Apply takes on a reloaded [server.tls]: files are read again and the
// client certificate settings replaced. On an error the running
// configuration stays. Switching between files and ACME, and changes of
// [server.tls.acme], need a restart (the caller reports them).
func (s *Server) Apply(cfg config.TLS) error {
	if !cfg.Enabled() {
		return errors.New("[server.tls] was removed: restart to serve plain HTTP; TLS stays on until then")
	}
	if (s.acme != nil) != cfg.ACME.Enabled() {
		return errors.New("switching between certificate files and [server.tls.acme] needs a restart")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.load(cfg)
	if err != nil {
		return err
	}
	s.st.Store(st)
	s.failed = ""
	s.announce(st)
	return nil
}

// Check reads the files again if they changed since they were loaded,
// and serves the new ones if they load; otherwise the old ones stay and
// the error is returned (once per change of the files). It reports
// whether new files were taken on.
func (s *Server) Check() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.st.Load()
	cs, ca := stamp(cur.cfg.CertFile, cur.cfg.KeyFile), stamp(cur.cfg.ClientCAFile)
	if cs == cur.certStamp && ca == cur.caStamp {
		return false, nil
	}
	if cs+ca == s.failed {
		return false, nil
	}
	st, err := s.load(cur.cfg)
	if err != nil {
		s.failed = cs + ca
		return false, err
	}
	s.st.Store(st)
	s.failed = ""
	s.announce(st)
	return true, nil
}

// Start runs the file checks, and with ACME obtains the certificates now
// (rather than at the first handshake) and serves HTTP-01 challenges when
// so configured, until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.acme != nil {
		if err := s.acme.start(ctx); err != nil {
			return err
		}
	}
	go func() {
		t := time.NewTicker(s.o.PollEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if changed, err := s.Check(); err != nil {
					s.o.Log.Error("TLS files changed but cannot be used; the previous certificate is still served", "err", err.Error())
				} else if changed {
					s.o.Log.Info("TLS files reloaded", "cert_file", s.st.Load().cfg.CertFile)
				}
				if s.acme != nil {
					s.acme.observe()
				}
			}
		}
	}()
	return nil
}

// load reads cfg's files into a new state.
func (s *Server) load(cfg config.TLS) (*state, error) {
	st := &state{cfg: cfg}
	st.certStamp = stamp(cfg.CertFile, cfg.KeyFile)
	st.caStamp = stamp(cfg.ClientCAFile)
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// HTTP/1.1 only: the gateway checks request framing on the
		// decrypted stream (gateway.FramingListener), which net/http's
		// HTTP/2 server would bypass. See docs/design/tls.md.
		NextProtos: []string{"http/1.1"},
	}
	if cfg.MinVersion == config.TLSVersion12 {
		conf.MinVersion = tls.VersionTLS12
		conf.CipherSuites = modernSuites
	}
	if s.acme != nil {
		conf.GetCertificate = s.acme.getCertificate
	} else {
		c, err := LoadKeyPair("server.tls.cert_file", cfg.CertFile, "server.tls.key_file", cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		st.cert = c
		conf.Certificates = []tls.Certificate{*c}
	}
	if cfg.ClientCAFile != "" {
		pool, _, err := LoadCAs("server.tls.client_ca_file", cfg.ClientCAFile, false)
		if err != nil {
			return nil, err
		}
		conf.ClientCAs = pool
		switch cfg.ClientAuth {
		case config.ClientAuthRequired:
			conf.ClientAuth = tls.RequireAndVerifyClientCert
		case config.ClientAuthOptional:
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	st.conf = conf
	return st, nil
}

// announce logs a loaded certificate's validity problems and records its
// expiry.
func (s *Server) announce(st *state) {
	if st.cert == nil {
		return
	}
	leaf := st.cert.Leaf
	s.o.Metrics.server(true, leaf)
	if p := ExpiryProblem(leaf, s.o.Now()); p != "" {
		s.o.Log.Warn("server.tls.cert_file: "+p, "cert_file", st.cfg.CertFile)
	}
}

// ClientCertificate returns the verified client certificate of a request
// made over mTLS (the leaf of its first verified chain), nil otherwise. A
// certificate a client sent but the gateway did not verify is never
// returned.
func ClientCertificate(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// Describe is a one-line summary of cfg for the startup log.
func Describe(cfg config.TLS) string {
	src := "files"
	if cfg.ACME.Enabled() {
		src = fmt.Sprintf("ACME (%s, %s)", cfg.ACME.DirectoryURL, cfg.ACME.Challenge)
	}
	return fmt.Sprintf("TLS %s+ from %s, client certificates: %s", cfg.MinVersion, src, cfg.ClientAuth)
}
