package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	memoschema "github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/transport"
)

// Client delivers to SFTP recipient systems. It keeps a small pool of
// connections per system. Safe for concurrent use.
type Client struct {
	cfg    Config
	signer ssh.Signer

	mu     sync.Mutex
	pools  map[string]*pool
	closed bool
}

// New returns a Client. It loads the key file now, so a bad key fails at
// start-up and not on the first message.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := cfg.Signer
	if s == nil {
		var err error
		if s, err = LoadSigner(cfg.KeyFile); err != nil {
			return nil, err
		}
	}
	return &Client{cfg: cfg, signer: s, pools: map[string]*pool{}}, nil
}

// PublicKey is memoflow's public key in authorized_keys form: what a
// recipient system's operator adds to the SFTP user.
func (c *Client) PublicKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.signer.PublicKey())))
}

// Close closes every pooled connection. Deliveries in flight finish or
// fail on their closed connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for id, p := range c.pools {
		p.closeIdle()
		delete(c.pools, id)
	}
	return nil
}

func (c *Client) pool(t *Target) (*pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, transport.Permanentf(Proto, transport.CodeConfig, "client closed")
	}
	fp := t.fingerprint()
	p := c.pools[t.SystemID]
	if p != nil && p.fp != fp {
		// The registry changed the system: old connections were made
		// with old settings (maybe an old pinned key); drop them.
		p.closeIdle()
		p = nil
	}
	if p == nil {
		p = &pool{fp: fp, sem: make(chan struct{}, c.cfg.MaxConnsPerSystem)}
		c.pools[t.SystemID] = p
	}
	return p, nil
}

// pool holds up to MaxConnsPerSystem connections to one system. sem
// counts connections in use; a new one is dialled only when no idle one
// is left, so in use + idle never exceeds the bound.
type pool struct {
	fp  string
	sem chan struct{}

	mu   sync.Mutex
	idle []*conn
}

type conn struct {
	nc   net.Conn
	ssh  *ssh.Client
	sftp *pkgsftp.Client
	used time.Time
	// fsync: the server has fsync@openssh.com, so a file is on disk
	// before it is renamed into view.
	fsync bool
}

func (x *conn) close() {
	_ = x.sftp.Close()
	_ = x.ssh.Close()
}

func (p *pool) take(idleTimeout time.Duration) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for len(p.idle) > 0 {
		x := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(x.used) > idleTimeout {
			x.close() // the server may have dropped it already
			continue
		}
		return x
	}
	return nil
}

func (p *pool) put(x *conn) {
	x.used = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, x)
	p.mu.Unlock()
}

func (p *pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.idle {
		x.close()
	}
	p.idle = nil
}

// Deliver writes memo as <Folder>/<messageUUID>.xml on the system's
// server. nil means the file is there with exactly these bytes (also when
// an earlier attempt put it there); otherwise a *transport.Error.
func (c *Client) Deliver(ctx context.Context, t *Target, messageUUID string, memo []byte) error {
	if !memoschema.IsUUID(messageUUID) {
		return transport.Permanentf(Proto, transport.CodeBadMessage, "messageUUID %q is not a UUID", messageUUID)
	}
	if len(memo) == 0 {
		return transport.Permanentf(Proto, transport.CodeBadMessage, "empty message %s", messageUUID)
	}
	return c.do(ctx, t, func(x *conn) error { return put(x, t.Folder, messageUUID, memo) })
}

// do runs op on a pooled connection of t's system, with OpTimeout. A
// reused connection that turns out dead gets one retry on a fresh one:
// servers drop idle sessions, and that is no failure of the system.
func (c *Client) do(ctx context.Context, t *Target, op func(*conn) error) error {
	key, err := t.hostKey()
	if err != nil {
		return &transport.Error{Code: transport.CodeConfig, Outcome: transport.Permanent, Protocol: Proto, Err: err}
	}
	p, err := c.pool(t)
	if err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return transport.NetError(Proto, fmt.Errorf("waiting for a connection to %s: %w", t.SystemID, ctx.Err()))
	}
	defer func() { <-p.sem }()

	for try := 0; ; try++ {
		x := p.take(c.cfg.IdleTimeout)
		reused := x != nil
		if x == nil {
			if x, err = c.dial(ctx, t, key); err != nil {
				return err
			}
		}
		err = c.run(ctx, x, op)
		var te *transport.Error
		if errors.As(err, &te) && te.Code == transport.CodeConnect && reused && try == 0 {
			x.close()
			continue
		}
		if err == nil || !brokenConn(err) {
			p.put(x)
		} else {
			x.close()
		}
		return err
	}
}

// run applies op under OpTimeout. pkg/sftp calls take no context, so the
// deadline closes the connection under them; the connection is then gone
// and the error is a timeout.
func (c *Client) run(ctx context.Context, x *conn, op func(*conn) error) error {
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	fired := false
	stop := context.AfterFunc(opCtx, func() { _ = x.nc.Close() })
	err := op(x)
	if !stop() {
		fired = true
	}
	cancel()
	if fired {
		if ctx.Err() != nil {
			// The caller gave up (shutdown, its own deadline).
			return transport.NetError(Proto, fmt.Errorf("interrupted: %w", ctx.Err()))
		}
		return &transport.Error{Code: transport.CodeTimeout, Outcome: transport.Transient, Protocol: Proto,
			Err: fmt.Errorf("no answer within %v: %w", c.cfg.OpTimeout, context.DeadlineExceeded)}
	}
	return err
}

// brokenConn: the error came from the connection, not from the file
// system behind it, so the connection must not go back to the pool.
func brokenConn(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return true
	}
	return te.Code == transport.CodeConnect || te.Code == transport.CodeTimeout
}

type hostKeyError struct {
	want []ssh.PublicKey
	got  ssh.PublicKey
}

func (e *hostKeyError) Error() string {
	return fmt.Sprintf("host key %s %s is not the pinned %s", e.got.Type(), ssh.FingerprintSHA256(e.got), describeKeys(e.want))
}

func describeKeys(keys []ssh.PublicKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.Type() + " " + ssh.FingerprintSHA256(k)
	}
	return strings.Join(s, " or ")
}

func (c *Client) dial(ctx context.Context, t *Target, pinned []ssh.PublicKey) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", t.Addr)
	if err != nil {
		return nil, transport.NetError(Proto, fmt.Errorf("%s (%s): %w", t.SystemID, t.Addr, err))
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var mismatch *hostKeyError
	cfg := &ssh.ClientConfig{
		User: t.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(c.signer)},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if !pinnedKey(pinned, got) {
				mismatch = &hostKeyError{want: pinned, got: got}
				return mismatch
			}
			return nil
		},
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.Addr, cfg)
	if err != nil {
		_ = nc.Close()
		switch {
		case mismatch != nil:
			// Loud: either the server was reinstalled or someone is in
			// the middle. A person must look; never retried blindly.
			return nil, transport.Permanentf(Proto, transport.CodeHostKeyMismatch, "%s (%s): %v", t.SystemID, t.Addr, mismatch)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, transport.Permanentf(Proto, transport.CodeAuthRejected,
				"%s (%s) refused memoflow's key %s for user %q: %v", t.SystemID, t.Addr,
				ssh.FingerprintSHA256(c.signer.PublicKey()), t.User, err)
		case strings.Contains(err.Error(), "no common algorithm for host key"):
			return nil, transport.Permanentf(Proto, transport.CodeHostKeyMismatch,
				"%s (%s) has no host key of the pinned type (%s): %v", t.SystemID, t.Addr, describeKeys(pinned), err)
		}
		return nil, transport.NetError(Proto, fmt.Errorf("%s (%s) ssh handshake: %w", t.SystemID, t.Addr, err))
	}
	sshc := ssh.NewClient(sc, chans, reqs)
	// pkgsftp.NewClientPipe's handshake has no timeout either: the dial
	// deadline is still set on nc.
	sf, err := pkgsftp.NewClient(sshc, pkgsftp.UseConcurrentWrites(true))
	if err != nil {
		_ = sshc.Close()
		if strings.Contains(err.Error(), "subsystem request failed") {
			return nil, transport.Permanentf(Proto, transport.CodeUnsupported, "%s (%s) has no sftp subsystem: %v", t.SystemID, t.Addr, err)
		}
		return nil, transport.NetError(Proto, fmt.Errorf("%s (%s) sftp start: %w", t.SystemID, t.Addr, err))
	}
	_ = nc.SetDeadline(time.Time{})
	_, fsync := sf.HasExtension("fsync@openssh.com")
	return &conn{nc: nc, ssh: sshc, sftp: sf, fsync: fsync}, nil
}

// put is one delivery: if <uuid>.xml is already there, compare; else
// write a hidden temporary file, flush it, rename it into view.
func put(x *conn, folder, uuid string, memo []byte) error {
	final := path.Join(folder, uuid+".xml")
	if done, err := existing(x, final, memo); done || err != nil {
		return err
	}
	tmp := path.Join(folder, "."+uuid+"."+randHex(4)+".part")
	f, err := x.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return classify(err, "create "+tmp)
	}
	if _, err = f.ReadFrom(bytes.NewReader(memo)); err == nil && x.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		// A server may report a failed write only at close (buffered
		// writes, quota checks): the close error counts.
		err = cerr
	}
	if err != nil {
		_ = x.sftp.Remove(tmp)
		return classify(err, "write "+tmp)
	}
	// Plain SFTP rename refuses to replace an existing file, which is
	// what we want: a file that appeared meanwhile is compared, never
	// overwritten.
	if rerr := x.sftp.Rename(tmp, final); rerr != nil {
		_ = x.sftp.Remove(tmp)
		if done, err := existing(x, final, memo); done || err != nil {
			return err
		}
		return classify(rerr, "rename to "+final)
	}
	return nil
}

// existing reports whether final is already there: done with nil when it
// holds memo, done with CodeFileConflict when it holds something else.
func existing(x *conn, final string, memo []byte) (bool, error) {
	st, err := x.sftp.Stat(final)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, classify(err, "stat "+final)
	}
	if st.Size() == int64(len(memo)) {
		f, err := x.sftp.Open(final)
		if err != nil {
			return false, classify(err, "open "+final)
		}
		got, err := io.ReadAll(io.LimitReader(f, int64(len(memo))+1))
		_ = f.Close()
		if err != nil {
			return false, classify(err, "read "+final)
		}
		if bytes.Equal(got, memo) {
			return true, nil
		}
	}
	return true, transport.Permanentf(Proto, transport.CodeFileConflict,
		"%s exists with other content (%d bytes, ours %d): a different message under the same messageUUID", final, st.Size(), len(memo))
}

// classify maps an SFTP or connection error to an outcome and code.
func classify(err error, what string) *transport.Error {
	// pkg/sftp turns "no such file" and "permission denied" into the os
	// errors (and the file system path wraps them).
	switch {
	case errors.Is(err, os.ErrPermission):
		return &transport.Error{Code: transport.CodePermissionDenied, Outcome: transport.Permanent, Protocol: Proto,
			Reply: 3, Err: fmt.Errorf("%s: %w", what, err)}
	case errors.Is(err, os.ErrNotExist):
		return &transport.Error{Code: transport.CodeFolderMissing, Outcome: transport.Permanent, Protocol: Proto,
			Reply: 2, Err: fmt.Errorf("%s: %w", what, err)}
	}
	var se *pkgsftp.StatusError
	if !errors.As(err, &se) {
		// Not a status from the server: the connection broke (lost,
		// EOF, reset, closed by our deadline).
		return transport.NetError(Proto, fmt.Errorf("%s: %w", what, err))
	}
	e := &transport.Error{Protocol: Proto, Reply: int(se.Code), Err: fmt.Errorf("%s: %w", what, err)}
	msg := strings.ToLower(err.Error())
	switch se.FxCode() {
	case pkgsftp.ErrSSHFxPermissionDenied:
		e.Code, e.Outcome = transport.CodePermissionDenied, transport.Permanent
	case pkgsftp.ErrSSHFxNoSuchFile:
		e.Code, e.Outcome = transport.CodeFolderMissing, transport.Permanent
	case pkgsftp.ErrSSHFxOpUnsupported:
		e.Code, e.Outcome = transport.CodeUnsupported, transport.Permanent
	case pkgsftp.ErrSSHFxConnectionLost, pkgsftp.ErrSSHFxNoConnection:
		e.Code, e.Outcome = transport.CodeConnect, transport.Transient
	case 14, 15: // SSH_FX_NO_SPACE_ON_FILESYSTEM, SSH_FX_QUOTA_EXCEEDED (draft v5+)
		e.Code, e.Outcome = transport.CodeStorageFull, transport.Transient
	default:
		// SFTP v3 (OpenSSH) says only "failure"; the message carries
		// strerror. Space runs out and comes back: transient. A size
		// the server will never take: permanent.
		switch {
		case strings.Contains(msg, "no space") || strings.Contains(msg, "quota") || strings.Contains(msg, "disk full"):
			e.Code, e.Outcome = transport.CodeStorageFull, transport.Transient
		case strings.Contains(msg, "too large") || strings.Contains(msg, "file too big"):
			e.Code, e.Outcome = transport.CodeFileTooLarge, transport.Permanent
		case strings.Contains(msg, "permission denied") || strings.Contains(msg, "read-only file system"):
			e.Code, e.Outcome = transport.CodePermissionDenied, transport.Permanent
		default:
			e.Code, e.Outcome = transport.CodeRemoteFailure, transport.Transient
		}
	}
	return e
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
