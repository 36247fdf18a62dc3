package smtp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Server is a small but real SMTP server (go-smtp) standing in for a
// recipient system's mail server: for tests, the simulator (memoflow sim
// recipient --protocol smtp) and benchmarks. It offers STARTTLS with its
// own certificate and refuses MAIL before it; it decrypts each message
// with the system's key, verifies the signature against the trusted
// senders, and counts MeMo by messageUUID. Not for production.
type Server struct {
	cfg    ServerConfig
	srv    *gosmtp.Server
	ln     net.Listener
	roots  *x509.CertPool
	tlsDER []byte

	mu       sync.Mutex
	counts   map[string]int
	memos    map[string][]byte
	conns    map[*gosmtp.Conn]struct{}
	mails    int
	rejected []error
	onAccept func(uuid string)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Addr string // default 127.0.0.1:0
	// Recipient is the system's certificate and key: mail is decrypted
	// with it. Required.
	Recipient *Identity
	// Trusted verifies signatures: memoflow's certificate or its CA.
	// Required.
	Trusted *x509.CertPool
	// NoTLS offers no STARTTLS (to test that the client refuses).
	NoTLS bool
	// Reply injects an SMTP reply: called at "mail", "rcpt" and "data"
	// (after the message was opened, with its uuid; "" before). A non-nil
	// *gosmtp.SMTPError is the answer.
	Reply func(stage, uuid string) *gosmtp.SMTPError
	// Now is the clock for signature verification; default time.Now.
	Now func() time.Time
	// MaxMessageBytes is advertised as SIZE; default 256 MiB.
	MaxMessageBytes int64
	// DiscardMemos keeps no MeMo bytes (Memo returns nil): benchmarks
	// and long simulator runs, whose memory would grow with every mail.
	DiscardMemos bool
}

// NewServer starts a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Recipient == nil || cfg.Trusted == nil {
		return nil, &ConfigError{"recipient", "give the system's certificate+key and the trusted sender certificates"}
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, counts: map[string]int{}, memos: map[string][]byte{}, conns: map[*gosmtp.Conn]struct{}{}}
	gs := gosmtp.NewServer(s)
	gs.Domain = "localhost"
	gs.MaxMessageBytes = 256 << 20
	if cfg.MaxMessageBytes > 0 {
		gs.MaxMessageBytes = cfg.MaxMessageBytes
	}
	gs.MaxRecipients = 10
	gs.ReadTimeout = time.Minute
	gs.WriteTimeout = time.Minute
	gs.ErrorLog = discardLog{}
	if !cfg.NoTLS {
		tc, roots, err := selfSignedTLS()
		if err != nil {
			return nil, err
		}
		gs.TLSConfig, s.roots, s.tlsDER = tc, roots, tc.Certificates[0].Certificate[0]
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.srv, s.ln = gs, ln
	go func() { _ = gs.Serve(ln) }()
	return s, nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// TLSRoots verifies the server's TLS certificate (Config.TLSRoots).
func (s *Server) TLSRoots() *x509.CertPool { return s.roots }

// TLSCertPEM is the server's self-signed TLS certificate as PEM: what a
// separate memoflow process trusts with --smtp-tls-ca-file (nil with
// NoTLS). It is new on every start.
func (s *Server) TLSCertPEM() []byte {
	if s.tlsDER == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.tlsDER})
}

// Count is how many times the MeMo with this uuid was accepted.
func (s *Server) Count(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[uuid]
}

// Memo returns the last accepted MeMo bytes for uuid.
func (s *Server) Memo(uuid string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memos[uuid]
}

// Total is the number of accepted messages; Sessions the number of SMTP
// connections opened; Mails the MAIL commands taken (TLS or not).
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) Mails() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails
}

// OnAccept calls fn with the messageUUID of every mail accepted (opened,
// decrypted and verified), as it arrives; nil removes it. fn must be
// quick and safe for concurrent use.
func (s *Server) OnAccept(fn func(uuid string)) {
	s.mu.Lock()
	s.onAccept = fn
	s.mu.Unlock()
}

// Rejected lists why messages were refused after DATA (decrypt, verify).
func (s *Server) Rejected() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.rejected...)
}

// Close stops the server and its sessions.
func (s *Server) Close() error {
	// Close the listener too: Serve registers it in a goroutine that may
	// not have run yet.
	_ = s.ln.Close()
	return s.srv.Close()
}

// NewSession implements gosmtp.Backend.
func (s *Server) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	// go-smtp starts a new session after STARTTLS on the same
	// connection: count connections, not sessions.
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return &serverSession{s: s, c: c}, nil
}

type serverSession struct {
	s *Server
	c *gosmtp.Conn
}

func (x *serverSession) inject(stage, uuid string) error {
	if x.s.cfg.Reply == nil {
		return nil
	}
	if e := x.s.cfg.Reply(stage, uuid); e != nil {
		return e
	}
	return nil
}

func (x *serverSession) Mail(string, *gosmtp.MailOptions) error {
	x.s.mu.Lock()
	x.s.mails++
	x.s.mu.Unlock()
	if _, ok := x.c.TLSConnectionState(); !ok && !x.s.cfg.NoTLS {
		return &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	return x.inject("mail", "")
}

func (x *serverSession) Rcpt(string, *gosmtp.RcptOptions) error { return x.inject("rcpt", "") }

func (x *serverSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	o, err := Open(raw, x.s.cfg.Recipient, x.s.cfg.Trusted, x.s.cfg.Now())
	if err != nil {
		x.s.mu.Lock()
		x.s.rejected = append(x.s.rejected, err)
		x.s.mu.Unlock()
		// RFC 3463: X.7.5 cryptographic failure, X.7.7 message
		// integrity failure, X.6.0 other media error.
		var oe *OpenError
		code := gosmtp.EnhancedCode{5, 6, 0}
		if errors.As(err, &oe) {
			switch oe.Step {
			case "decrypt":
				code = gosmtp.EnhancedCode{5, 7, 5}
			case "verify":
				code = gosmtp.EnhancedCode{5, 7, 7}
			}
		}
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: code, Message: err.Error()}
	}
	if err := x.inject("data", o.UUID); err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.counts[o.UUID]++
	if !x.s.cfg.DiscardMemos {
		x.s.memos[o.UUID] = o.Memo
	}
	fn := x.s.onAccept
	x.s.mu.Unlock()
	if fn != nil {
		fn(o.UUID)
	}
	return nil
}

func (x *serverSession) Reset()        {}
func (x *serverSession) Logout() error { return nil }

// selfSignedTLS makes the server's TLS certificate for 127.0.0.1 and
// localhost, and the pool that trusts it.
func selfSignedTLS() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "memoflow test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour), // a demo may run for days
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion: tls.VersionTLS12}, pool, nil
}
