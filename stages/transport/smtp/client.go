package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	memoschema "github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/transport"
)

// Client delivers to SMTP recipient systems. It keeps a few open sessions
// per server for reuse. Safe for concurrent use.
type Client struct {
	cfg Config
	id  *Identity

	mu     sync.Mutex
	idle   map[string][]*session // by server address
	closed bool
}

type session struct {
	nc   net.Conn
	c    *gosmtp.Client
	used time.Time
}

func (s *session) close() { _ = s.c.Close() }

// New returns a Client. The function certificate is loaded and checked
// now (key matches, valid today), so a bad one fails at start-up.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := cfg.Identity
	if id == nil {
		var err error
		if id, err = LoadIdentity(cfg.CertFile, cfg.KeyFile); err != nil {
			return nil, err
		}
	}
	if err := checkValidity("memoflow's function", id.Cert, cfg.Now()); err != nil {
		return nil, &ConfigError{"cert_file", err.Error() + ": renew the FOCES/VOCES certificate"}
	}
	if id.Cert.KeyUsage != 0 && id.Cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, &ConfigError{"cert_file", "the certificate does not allow digital signatures"}
	}
	return &Client{cfg: cfg, id: id, idle: map[string][]*session{}}, nil
}

// Certificate is memoflow's signing certificate: what recipient systems
// must trust.
func (c *Client) Certificate() *x509.Certificate { return c.id.Cert }

// Close closes the kept sessions.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for a, ss := range c.idle {
		for _, s := range ss {
			_ = s.c.Quit()
			s.close()
		}
		delete(c.idle, a)
	}
	return nil
}

// Deliver sends memo to the system as a signed and encrypted e-mail. nil
// means the server accepted it (250 after DATA); otherwise a
// *transport.Error. SMTP cannot be idempotent: a connection lost after
// the final dot may leave the mail delivered and the attempt transient;
// the repeat carries the same Message-ID and X-Memo-Message-UUID, by
// which the receiver drops it.
func (c *Client) Deliver(ctx context.Context, t *Target, messageUUID string, memo []byte) error {
	if !memoschema.IsUUID(messageUUID) {
		return transport.Permanentf(Proto, transport.CodeBadMessage, "messageUUID %q is not a UUID", messageUUID)
	}
	if len(memo) == 0 {
		return transport.Permanentf(Proto, transport.CodeBadMessage, "empty message %s", messageUUID)
	}
	cert, err := t.certificate()
	if err != nil {
		return &transport.Error{Code: transport.CodeConfig, Outcome: transport.Permanent, Protocol: Proto, Err: err}
	}
	now := c.cfg.Now()
	if err := checkValidity("memoflow's function", c.id.Cert, now); err != nil {
		return err
	}
	if err := c.checkRecipient(t, cert, now); err != nil {
		return err
	}
	msg, err := c.compose(t, cert, messageUUID, memo, now)
	if err != nil {
		return err
	}
	return c.send(ctx, t, msg)
}

// send runs one mail transaction; a kept session that turns out dead
// gets one retry on a fresh one (servers drop idle sessions).
func (c *Client) send(ctx context.Context, t *Target, msg []byte) error {
	for try := 0; ; try++ {
		s := c.take(t.Addr)
		reused := s != nil
		if s == nil {
			var err error
			if s, err = c.dial(ctx, t); err != nil {
				return err
			}
		}
		err := c.transact(ctx, s, t, msg, reused)
		var te *transport.Error
		if reused && try == 0 && errors.As(err, &te) && te.Code == transport.CodeConnect {
			s.close()
			continue
		}
		if err == nil || errors.As(err, &te) && te.Reply != 0 {
			// The server answered: the session is in a known state
			// (RSET before the next use).
			c.put(t.Addr, s)
		} else {
			s.close()
		}
		return err
	}
}

func (c *Client) take(addr string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.idle[addr]
	now := time.Now()
	for len(ss) > 0 {
		s := ss[len(ss)-1]
		ss = ss[:len(ss)-1]
		if now.Sub(s.used) <= c.cfg.IdleTimeout {
			c.idle[addr] = ss
			return s
		}
		s.close()
	}
	delete(c.idle, addr)
	return nil
}

func (c *Client) put(addr string, s *session) {
	s.used = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= c.cfg.MaxIdlePerServer {
		s.close()
		return
	}
	c.idle[addr] = append(c.idle[addr], s)
}

func (c *Client) dial(ctx context.Context, t *Target) (*session, error) {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, transport.NetError(Proto, fmt.Errorf("%s (%s): %w", t.SystemID, t.Addr, err))
	}
	// go-smtp sets its own deadline on every command (CommandTimeout),
	// so the greeting, STARTTLS and EHLO are bounded by closing the
	// connection when DialTimeout runs out.
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(dctx, func() { _ = nc.Close() })
	timedOut := func(err error) error {
		if !stop() {
			return transport.NetError(Proto, fmt.Errorf("%s (%s) smtp greeting, STARTTLS and EHLO within %v: %w (%v)",
				t.SystemID, t.Addr, c.cfg.DialTimeout, context.DeadlineExceeded, err))
		}
		return nil
	}
	host, _, _ := net.SplitHostPort(t.Addr)
	tc := &tls.Config{ServerName: host, RootCAs: c.cfg.TLSRoots, MinVersion: tls.VersionTLS12}
	cl, err := gosmtp.NewClientStartTLS(nc, tc)
	if err != nil {
		_ = nc.Close()
		if te := timedOut(err); te != nil {
			return nil, te
		}
		if strings.Contains(err.Error(), "doesn't support STARTTLS") {
			return nil, transport.Permanentf(Proto, transport.CodeStartTLSMissing,
				"%s (%s) offers no STARTTLS; memoflow never sends MeMo in plaintext", t.SystemID, t.Addr)
		}
		return nil, c.classify(t, "starttls", err)
	}
	cl.CommandTimeout, cl.SubmissionTimeout = c.cfg.OpTimeout, c.cfg.OpTimeout
	// EHLO again, now inside TLS: this runs the TLS handshake, so a
	// certificate that does not verify shows here.
	if err := cl.Hello(c.cfg.HeloName); err != nil {
		_ = cl.Close()
		if te := timedOut(err); te != nil {
			return nil, te
		}
		return nil, c.classify(t, "ehlo", err)
	}
	if te := timedOut(nil); te != nil {
		_ = cl.Close()
		return nil, te
	}
	return &session{nc: nc, c: cl}, nil
}

func (c *Client) transact(ctx context.Context, s *session, t *Target, msg []byte, reused bool) (err error) {
	// Each command and the DATA transfer are bounded by OpTimeout
	// (go-smtp's per-command deadlines); the caller's context ends the
	// attempt by closing the connection.
	stop := context.AfterFunc(ctx, func() { _ = s.nc.Close() })
	defer func() {
		if !stop() && err != nil {
			err = transport.NetError(Proto, fmt.Errorf("%s (%s) interrupted: %w (%v)", t.SystemID, t.Addr, ctx.Err(), err))
		}
	}()
	if reused {
		if err := s.c.Reset(); err != nil {
			return c.classify(t, "rset", err)
		}
	}
	if max, ok := s.c.MaxMessageSize(); ok && max > 0 && len(msg) > max {
		return &transport.Error{Code: transport.CodeSMTPRejected, Outcome: transport.Permanent, Protocol: Proto, Reply: 552,
			Err: fmt.Errorf("%s (%s) takes at most %d bytes; the message is %d", t.SystemID, t.Addr, max, len(msg))}
	}
	if err := s.c.Mail(c.cfg.From, &gosmtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return c.classify(t, "MAIL FROM", err)
	}
	if err := s.c.Rcpt(t.To, nil); err != nil {
		return c.classify(t, "RCPT TO", err)
	}
	w, err := s.c.Data()
	if err != nil {
		return c.classify(t, "DATA", err)
	}
	if _, err := bytes.NewReader(msg).WriteTo(w); err != nil {
		_ = w.Close()
		return c.classify(t, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return c.classify(t, "end of DATA", err)
	}
	return nil
}

// classify maps an SMTP client error: a reply by its class, TLS
// verification failures permanently, the rest as connection trouble.
func (c *Client) classify(t *Target, step string, err error) *transport.Error {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		e := &transport.Error{Protocol: Proto, Reply: se.Code,
			Err: fmt.Errorf("%s (%s) %s: %w", t.SystemID, t.Addr, step, err)}
		if se.Code >= 400 && se.Code < 500 {
			e.Code, e.Outcome = transport.CodeSMTPTransient, transport.Transient
		} else {
			e.Code, e.Outcome = transport.CodeSMTPRejected, transport.Permanent
		}
		return e
	}
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return transport.Permanentf(Proto, transport.CodeTLSVerify,
			"%s (%s): the server's TLS certificate does not verify: %v", t.SystemID, t.Addr, err)
	}
	return transport.NetError(Proto, fmt.Errorf("%s (%s) %s: %w", t.SystemID, t.Addr, step, err))
}
