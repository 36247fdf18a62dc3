package deliver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/sftp"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// CodeTransportConfig is the code of a message to an SFTP or SMTP system
// that cannot be attempted: memoflow has no SSH key or function
// certificate configured, or the registry entry does not make a usable
// target. The same string as the transports' own configuration code.
const CodeTransportConfig = transport.CodeConfig

// configCodes are the permanent codes that are a fault of a system's
// setup (or memoflow's), not of one message: every message to the system
// fails the same way until someone changes configuration, so they raise
// the alert metric memoflow_deliver_transport_config_errors_total.
var configCodes = map[string]bool{
	transport.CodeConfig:           true,
	transport.CodeHostKeyMismatch:  true,
	transport.CodeAuthRejected:     true,
	transport.CodeCertExpired:      true,
	transport.CodeCertInvalid:      true,
	transport.CodeTLSVerify:        true,
	transport.CodeStartTLSMissing:  true,
	transport.CodeUnsupported:      true,
	transport.CodePermissionDenied: true,
	transport.CodeFolderMissing:    true,
}

// NewSFTPClient builds the SFTP client from cfg (nil, nil without
// --sftp-key-file). The key is loaded now, so a bad key fails at start.
func NewSFTPClient(cfg Config) (*sftp.Client, error) {
	if cfg.SFTPKeyFile == "" {
		return nil, nil
	}
	c, err := sftp.New(sftp.Config{
		KeyFile:     cfg.SFTPKeyFile,
		DialTimeout: min(10*time.Second, cfg.Timeout),
		OpTimeout:   cfg.Timeout,
		// Connections bound concurrent deliveries per system; the
		// deliverer's per-system gate is the same bound.
		MaxConnsPerSystem: min(max(cfg.PerSystem, 1), 64),
	})
	if err != nil {
		return nil, fmt.Errorf("deliver.sftp_key_file: %w", err)
	}
	return c, nil
}

// NewSMTPClient builds the SMTP client from cfg (nil, nil without
// --smtp-cert-file). The certificate is loaded and checked now.
func NewSMTPClient(cfg Config) (*smtp.Client, error) {
	if cfg.SMTPCertFile == "" {
		return nil, nil
	}
	sc := smtp.Config{
		CertFile: cfg.SMTPCertFile, KeyFile: cfg.SMTPKeyFile, From: cfg.SMTPFrom,
		DialTimeout: min(10*time.Second, cfg.Timeout), OpTimeout: cfg.Timeout,
		MaxIdlePerServer: min(max(cfg.PerSystem, 1), 64),
	}
	var err error
	if sc.TLSRoots, err = loadPool("deliver.smtp_tls_ca_file", cfg.SMTPTLSCAFile); err != nil {
		return nil, err
	}
	if sc.RecipientRoots, err = loadPool("deliver.smtp_recipient_ca_file", cfg.SMTPRecipientCAFile); err != nil {
		return nil, err
	}
	c, err := smtp.New(sc)
	if err != nil {
		return nil, fmt.Errorf("deliver.smtp_cert_file: %w", err)
	}
	return c, nil
}

func loadPool(field, file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	certs, err := smtp.ParseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", field, file, err)
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// WithSFTPClient sets the SFTP client (instead of one built from
// --sftp-key-file). The Deliverer does not close it.
func WithSFTPClient(c *sftp.Client) Option {
	return func(d *Deliverer) { d.tr.sftp, d.tr.sftpSet = c, true }
}

// WithSMTPClient sets the SMTP client (instead of one built from
// --smtp-cert-file). The Deliverer does not close it.
func WithSMTPClient(c *smtp.Client) Option {
	return func(d *Deliverer) { d.tr.smtp, d.tr.smtpSet = c, true }
}

// transports holds the SFTP and SMTP clients and the targets built from
// registry entries: one per system, rebuilt when its entry changes (the
// SMTP target caches its parsed certificate; the SFTP client drops a
// system's pooled connections when the target's address, user or host
// key change).
type transports struct {
	sftp             *sftp.Client
	smtp             *smtp.Client
	sftpSet, smtpSet bool // given by option: not ours to close
	owned            []func() error

	mu    sync.Mutex
	sftpT map[string]*cachedTarget[sftp.Target]
	smtpT map[string]*cachedTarget[smtp.Target]
	// mailed remembers the last mails the SMTP server accepted. SMTP
	// cannot tell whether it has a mail already, so a sink batch that is
	// run again (its transaction aborted, or the stage rebalanced) would
	// mail every message of it a second time; within this process it
	// does not. After a crash the repeat carries the same Message-ID.
	mailed recentSet
}

// recentSet is a bounded set: the oldest key leaves when it is full.
type recentSet struct {
	mu   sync.Mutex
	m    map[string]struct{}
	ring []string
	next int
}

const recentMails = 1 << 16

func (r *recentSet) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[k]
	return ok
}

func (r *recentSet) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m, r.ring = map[string]struct{}{}, make([]string, recentMails)
	}
	if _, ok := r.m[k]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.m, old)
	}
	r.ring[r.next] = k
	r.m[k] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

type cachedTarget[T any] struct {
	fp  string
	t   *T
	err *AttemptError
}

// init builds the clients the options did not give.
func (x *transports) init(cfg Config) error {
	x.sftpT = map[string]*cachedTarget[sftp.Target]{}
	x.smtpT = map[string]*cachedTarget[smtp.Target]{}
	if !x.sftpSet {
		c, err := NewSFTPClient(cfg)
		if err != nil {
			return err
		}
		if c != nil {
			x.sftp = c
			x.owned = append(x.owned, c.Close)
		}
	}
	if !x.smtpSet {
		c, err := NewSMTPClient(cfg)
		if err != nil {
			x.close()
			return err
		}
		if c != nil {
			x.smtp = c
			x.owned = append(x.owned, c.Close)
		}
	}
	return nil
}

func (x *transports) close() {
	for _, f := range x.owned {
		_ = f()
	}
	x.owned = nil
}

// poolID is what a system's connections are pooled under: a standard
// system's selections all reach the supplier's one server, so they share
// the template's pool (and its session limit).
func poolID(sys *System) string {
	if sys.Template != "" {
		return sys.Template
	}
	return sys.ID
}

// target returns the SFTP or SMTP target of sys, or a permanent
// DELIVER_TRANSPORT_CONFIG when memoflow lacks the key/certificate or
// the entry does not make a target.
func (x *transports) target(sys *System) (any, *AttemptError) {
	switch sys.Protocol {
	case ProtoSFTP:
		if x.sftp == nil {
			return nil, attemptErr(CodeTransportConfig, "system %s takes SFTP, but memoflow has no SSH key: start the deliver stage with --sftp-key-file", sys.ID)
		}
		fp := sys.Endpoint + "\x00" + sys.SFTPUser + "\x00" + sys.SSHHostKey + "\x00" + sys.Folder + "\x00" + sys.ReceiptFolder + "\x00" + sys.Template
		return cached(x, x.sftpT, sys.ID, fp, func() (*sftp.Target, error) {
			t := SFTPTarget(sys)
			return t, t.Validate()
		})
	case ProtoSMTP:
		if x.smtp == nil {
			return nil, attemptErr(CodeTransportConfig, "system %s takes SMTP, but memoflow has no function certificate: start the deliver stage with --smtp-cert-file, --smtp-key-file and --smtp-from", sys.ID)
		}
		fp := sys.Endpoint + "\x00" + sys.SMTPAddress + "\x00" + sys.Certificate
		return cached(x, x.smtpT, sys.ID, fp, func() (*smtp.Target, error) {
			t := &smtp.Target{SystemID: sys.ID, Addr: registry.HostPort(sys.Endpoint, "smtp", 25), To: sys.SMTPAddress, CertPEM: []byte(sys.Certificate)}
			return t, t.Validate()
		})
	}
	return nil, attemptErr(CodeWrongProtocol, "system %s: protocol %s has no transport", sys.ID, sys.Protocol)
}

// SFTPTarget is the SFTP target of a registry system (not validated).
func SFTPTarget(sys *System) *sftp.Target {
	return &sftp.Target{SystemID: poolID(sys), Addr: registry.HostPort(sys.Endpoint, "sftp", 22), User: sys.SFTPUser,
		HostKey: sys.SSHHostKey, Folder: sys.Folder, ReceiptFolder: sys.ReceiptFolder}
}

func cached[T any](x *transports, m map[string]*cachedTarget[T], id, fp string, build func() (*T, error)) (any, *AttemptError) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c := m[id]; c != nil && c.fp == fp {
		if c.err != nil {
			return nil, c.err
		}
		return c.t, nil
	}
	t, err := build()
	c := &cachedTarget[T]{fp: fp, t: t}
	if err != nil {
		c.err = attemptErr(CodeTransportConfig, "registry entry of %s: %v", id, err)
	}
	m[id] = c
	if c.err != nil {
		return nil, c.err
	}
	return t, nil
}

// deliver sends body over the target's transport. permanent: no retry
// can help (transport.Permanent).
func (x *transports) deliver(ctx context.Context, target any, uuid string, body []byte) (aerr *AttemptError, permanent bool) {
	var err error
	switch t := target.(type) {
	case *sftp.Target:
		err = x.sftp.Deliver(ctx, t, uuid, body)
	case *smtp.Target:
		key := t.SystemID + "/" + uuid
		if x.mailed.has(key) {
			return nil, false
		}
		if err = x.smtp.Deliver(ctx, t, uuid, body); err == nil {
			x.mailed.add(key)
		}
	default:
		return attemptErr(CodeWrongProtocol, "no transport for %T", target), true
	}
	if err == nil {
		return nil, false
	}
	return transportError(err), transport.Classify(err) == transport.Permanent
}

// transportError makes a transport's error an AttemptError with its
// stable code (transport.CodeOf).
func transportError(err error) *AttemptError {
	var te *transport.Error
	if errors.As(err, &te) {
		msg := te.Protocol + " " + te.Outcome.String()
		if te.Reply != 0 {
			msg += fmt.Sprintf(", reply %d", te.Reply)
		}
		return &AttemptError{Code: te.Code, Err: fmt.Errorf("%s: %w", msg, te.Err)}
	}
	return &AttemptError{Code: transport.CodeOf(err), Err: err}
}

// Close releases the SFTP and SMTP clients the Deliverer built (pooled
// connections and sessions).
func (d *Deliverer) Close() error {
	d.tr.close()
	return nil
}
