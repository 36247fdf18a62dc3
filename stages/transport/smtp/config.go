// Package smtp delivers MeMo messages to recipient systems as e-mail:
// the MeMo attached, signed (S/MIME) with memoflow's function certificate
// (FOCES/VOCES) and encrypted to the recipient system's certificate, sent
// over SMTP with STARTTLS. Plaintext SMTP is refused. Replies map to
// outcomes: 4xx transient, 5xx permanent. Errors are *transport.Error
// (see stages/transport).
package smtp

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"
)

// Proto names the protocol in errors.
const Proto = "SMTP"

// ConfigError is a bad Target or Config field: the field and the fix.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "smtp: " + e.Field + ": " + e.Msg }

// Target is one SMTP recipient system: what the registry must hold.
type Target struct {
	SystemID string // registry id
	Addr     string // the system's SMTP server, host:port (25 or 587)
	To       string // the system's address, e.g. digitalpost@kommune.dk
	// CertPEM is the system's certificate (PEM; an OCES function
	// certificate with an RSA key): messages are encrypted to it.
	CertPEM []byte

	once sync.Once
	cert *x509.Certificate
	err  error
}

// Validate checks the target and parses its certificate.
func (t *Target) Validate() error {
	_, err := t.certificate()
	return err
}

func (t *Target) certificate() (*x509.Certificate, error) {
	t.once.Do(func() {
		switch {
		case t.SystemID == "":
			t.err = &ConfigError{"system_id", "set the registry id of the recipient system"}
		case !validHostPort(t.Addr):
			t.err = &ConfigError{"addr", fmt.Sprintf("%q: give the system's SMTP server as host:port (port 25 or 587)", t.Addr)}
		case !validAddress(t.To):
			t.err = &ConfigError{"to", fmt.Sprintf("%q: give the system's e-mail address (name@domain)", t.To)}
		case len(t.CertPEM) == 0:
			t.err = &ConfigError{"certificate", "give the system's certificate (PEM): mail to it is encrypted"}
		}
		if t.err != nil {
			return
		}
		certs, err := ParseCerts(t.CertPEM)
		if err != nil {
			t.err = &ConfigError{"certificate", err.Error()}
			return
		}
		t.cert = certs[0]
	})
	return t.cert, t.err
}

// Config is memoflow's side of SMTP delivery.
type Config struct {
	// CertFile and KeyFile are memoflow's function certificate (PEM,
	// certificate first then intermediates) and its private key. Or give
	// Identity directly.
	CertFile, KeyFile string
	Identity          *Identity

	From     string // envelope sender and From:, e.g. noreply@memoflow.example
	HeloName string // EHLO name; default the From domain

	// TLSRoots verifies the SMTP servers' TLS certificates; nil means the
	// system roots. There is no switch to skip verification.
	TLSRoots *x509.CertPool
	// RecipientRoots, when set, must be where recipient certificates
	// chain to (the OCES CAs); a certificate that does not is refused.
	RecipientRoots *x509.CertPool

	DialTimeout time.Duration // default 10s
	OpTimeout   time.Duration // each SMTP command, and the wait for the reply after DATA; default 60s
	IdleTimeout time.Duration // a kept session unused this long is closed; default 30s
	// MaxIdlePerServer sessions are kept open per server for reuse.
	// Default 2; servers drop idle sessions after a few minutes anyway.
	MaxIdlePerServer int

	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxIdlePerServer == 0 {
		c.MaxIdlePerServer = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HeloName == "" {
		if i := strings.LastIndexByte(c.From, '@'); i >= 0 {
			c.HeloName = c.From[i+1:]
		}
	}
}

// Validate checks the config (after defaults).
func (c *Config) Validate() error {
	switch {
	case c.Identity == nil && (c.CertFile == "" || c.KeyFile == ""):
		return &ConfigError{"cert_file", "give memoflow's function certificate and key (--smtp-cert-file, --smtp-key-file)"}
	case !validAddress(c.From):
		return &ConfigError{"from", fmt.Sprintf("%q: give memoflow's sender address (name@domain)", c.From)}
	case c.DialTimeout < 0 || c.OpTimeout < 0 || c.IdleTimeout < 0:
		return &ConfigError{"timeouts", "timeouts must not be negative (0 means the default)"}
	case c.MaxIdlePerServer < 0 || c.MaxIdlePerServer > 64:
		return &ConfigError{"max_idle_per_server", fmt.Sprintf("%d: give 1..64 (0 means 2)", c.MaxIdlePerServer)}
	}
	return nil
}

func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

func validHostPort(s string) bool {
	h, p, err := net.SplitHostPort(s)
	return err == nil && h != "" && p != ""
}
