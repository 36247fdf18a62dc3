package sftp

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Server is a small but real SFTP server over an x/crypto/ssh server: the
// recipient side for tests, the simulator (memoflow sim recipient
// --protocol sftp) and benchmarks. It serves a directory (paths are
// confined to it), accepts only the given client keys, and counts MeMo
// files renamed into the inbox by messageUUID. Not for production.
type Server struct {
	cfg    ServerConfig
	ln     net.Listener
	signer ssh.Signer
	sshCfg *ssh.ServerConfig

	mu       sync.Mutex
	counts   map[string]int
	total    int
	accepted int
	fault    Fault
	onAccept func(uuid string)
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Root           string          // served directory (required); created with Inbox and Receipts inside
	Addr           string          // listen address; default 127.0.0.1:0
	AuthorizedKeys []ssh.PublicKey // client keys allowed in (required)
	User           string          // the one user name accepted; default "memoflow"
	HostKey        ssh.Signer      // default: a fresh ed25519 key
	Inbox          string          // folder where MeMo files land; default /inbox
	Receipts       string          // folder for receipt files; default /receipts
}

// Fault injects a failure: called before each file operation with its
// name ("create", "write", "close", "rename", "remove", "stat", "list",
// "read", "mkdir") and the SFTP path. A non-nil error is the operation's
// answer: os.ErrPermission, syscall.ENOSPC, pkgsftp.ErrSSHFxFailure...
type Fault func(op, p string) error

// NewServer starts a Server listening on cfg.Addr.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Root == "" {
		return nil, &ConfigError{"root", "give the directory the server serves"}
	}
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, &ConfigError{"authorized_keys", "give at least one client public key (memoflow's)"}
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.User == "" {
		cfg.User = "memoflow"
	}
	if cfg.Inbox == "" {
		cfg.Inbox = "/inbox"
	}
	if cfg.Receipts == "" {
		cfg.Receipts = "/receipts"
	}
	for _, d := range []string{cfg.Inbox, cfg.Receipts} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, filepath.FromSlash(d)), 0o755); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, counts: map[string]int{}, conns: map[net.Conn]struct{}{}}
	s.signer = cfg.HostKey
	if s.signer == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if s.signer, err = ssh.NewSignerFromKey(k); err != nil {
			return nil, err
		}
	}
	s.sshCfg = &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() != cfg.User {
				return nil, fmt.Errorf("unknown user %q", md.User())
			}
			for _, k := range cfg.AuthorizedKeys {
				if sameKey(k, key) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	s.sshCfg.AddHostKey(s.signer)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the server's host key in authorized_keys form: the value to
// pin in the registry.
func (s *Server) HostKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.signer.PublicKey())))
}

// Target returns a Target for this server under the given system id.
func (s *Server) Target(systemID string) *Target {
	return &Target{SystemID: systemID, Addr: s.Addr(), User: s.cfg.User, HostKey: s.HostKey(),
		Folder: s.cfg.Inbox, ReceiptFolder: s.cfg.Receipts}
}

// Count is how many times <uuid>.xml was renamed into the inbox (1 for a
// message delivered once, however many attempts it took).
func (s *Server) Count(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[uuid]
}

// Total is the number of files renamed into the inbox.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Accepted is the number of TCP connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// DropConnections closes every open connection, as a server restart or
// an idle timeout on the server side would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// OnAccept calls fn with the messageUUID of every MeMo file renamed into
// the inbox, as it arrives (a benchmark's arrival point); nil removes it.
// fn must be quick and safe for concurrent use.
func (s *Server) OnAccept(fn func(uuid string)) {
	s.mu.Lock()
	s.onAccept = fn
	s.mu.Unlock()
}

// SetFault installs (or with nil removes) a fault injector.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Path maps an SFTP path to the file on disk.
func (s *Server) Path(p string) string {
	return filepath.Join(s.cfg.Root, filepath.FromSlash(path.Clean("/"+p)))
}

// Close stops listening and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			_ = nc.Close()
		}()
	}
}

func (s *Server) serve(nc net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, in, err := nch.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range in {
				ok := req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
			}
		}()
		h := &handler{s: s}
		rs := pkgsftp.NewRequestServer(ch, pkgsftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
		go func() {
			_ = rs.Serve()
			_ = rs.Close()
			_ = ch.Close()
		}()
	}
}

// handler serves the root directory through pkg/sftp's request server.
type handler struct{ s *Server }

func (h *handler) check(op, p string) error {
	h.s.mu.Lock()
	f := h.s.fault
	h.s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(op, p)
}

func (h *handler) Fileread(r *pkgsftp.Request) (io.ReaderAt, error) {
	if err := h.check("read", r.Filepath); err != nil {
		return nil, err
	}
	return os.Open(h.s.Path(r.Filepath))
}

func (h *handler) Filewrite(r *pkgsftp.Request) (io.WriterAt, error) {
	if err := h.check("create", r.Filepath); err != nil {
		return nil, err
	}
	fl := r.Pflags()
	mode := os.O_WRONLY
	if fl.Creat {
		mode |= os.O_CREATE
	}
	if fl.Excl {
		mode |= os.O_EXCL
	}
	if fl.Trunc {
		mode |= os.O_TRUNC
	}
	f, err := os.OpenFile(h.s.Path(r.Filepath), mode, 0o644)
	if err != nil {
		return nil, err
	}
	return &writer{h: h, f: f, p: r.Filepath}, nil
}

// writer passes writes through the fault injector, so a test can fill
// the disk half-way through a file.
type writer struct {
	h *handler
	f *os.File
	p string
}

func (w *writer) WriteAt(b []byte, off int64) (int, error) {
	if err := w.h.check("write", w.p); err != nil {
		return 0, err
	}
	return w.f.WriteAt(b, off)
}

func (w *writer) Close() error {
	err := w.f.Close()
	if ferr := w.h.check("close", w.p); ferr != nil {
		return ferr
	}
	return err
}

func (h *handler) Filecmd(r *pkgsftp.Request) error {
	op := strings.ToLower(r.Method)
	if err := h.check(op, r.Filepath); err != nil {
		return err
	}
	switch r.Method {
	case "Rename":
		from, to := h.s.Path(r.Filepath), h.s.Path(r.Target)
		// SFTP v3 rename does not replace: link, then unlink (what
		// OpenSSH's server does), so the target appears complete.
		if err := os.Link(from, to); err != nil {
			return err
		}
		if err := os.Remove(from); err != nil {
			return err
		}
		if dir, name := path.Split(path.Clean("/" + r.Target)); path.Clean(dir) == h.s.cfg.Inbox && strings.HasSuffix(name, ".xml") {
			uuid := strings.TrimSuffix(name, ".xml")
			h.s.mu.Lock()
			h.s.counts[uuid]++
			h.s.total++
			fn := h.s.onAccept
			h.s.mu.Unlock()
			if fn != nil {
				fn(uuid)
			}
		}
		return nil
	case "Remove":
		return os.Remove(h.s.Path(r.Filepath))
	case "Mkdir":
		return os.Mkdir(h.s.Path(r.Filepath), 0o755)
	case "Rmdir":
		return os.Remove(h.s.Path(r.Filepath))
	case "Setstat":
		return nil
	}
	return pkgsftp.ErrSSHFxOpUnsupported
}

func (h *handler) Filelist(r *pkgsftp.Request) (pkgsftp.ListerAt, error) {
	switch r.Method {
	case "List":
		if err := h.check("list", r.Filepath); err != nil {
			return nil, err
		}
		es, err := os.ReadDir(h.s.Path(r.Filepath))
		if err != nil {
			return nil, err
		}
		out := make(listerAt, 0, len(es))
		for _, e := range es {
			if fi, err := e.Info(); err == nil {
				out = append(out, fi)
			}
		}
		return out, nil
	case "Stat", "Lstat":
		if err := h.check("stat", r.Filepath); err != nil {
			return nil, err
		}
		fi, err := os.Stat(h.s.Path(r.Filepath))
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	}
	return nil, pkgsftp.ErrSSHFxOpUnsupported
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
