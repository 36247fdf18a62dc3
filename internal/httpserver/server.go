// Package httpserver serves memoflow's HTTP endpoints: the APIs stages
// register, Prometheus /metrics, /healthz (the process is alive) and /readyz
// (every readiness check passes).
package httpserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/memoflow/memoflow/internal/openapi"
)

// Check reports whether a dependency is ready; nil means ready.
type Check func(ctx context.Context) error

// Server is the process's one HTTP server.
type Server struct {
	Mux *http.ServeMux

	mu     sync.Mutex
	checks map[string]Check
	srv    *http.Server
	ln     net.Listener
	tls    *tls.Config
	// starting: the process listens (so a port in use fails fast) but its
	// APIs are not mounted yet; see Starting.
	starting atomic.Bool
}

// Starting makes requests to routes that are not registered yet answer
// 503 SERVICE_STARTING with Retry-After: 1 instead of 404, until Started.
// A process listens before its stages are up; a client retrying during a
// restart must see "come back", never "no such endpoint".
func (s *Server) Starting() { s.starting.Store(true) }

// Started ends Starting: from now on an unknown route is a 404.
func (s *Server) Started() { s.starting.Store(false) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.starting.Load() {
		if _, pattern := s.Mux.Handler(r); pattern == "" {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"code":"SERVICE_STARTING","message":"memoflow is starting; retry in a second"}`)
			return
		}
	}
	s.Mux.ServeHTTP(w, r)
}

// New returns a server exposing gatherer at /metrics.
func New(gatherer prometheus.Gatherer) *Server {
	s := &Server{Mux: http.NewServeMux(), checks: map[string]Check{}}
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.Mux.HandleFunc("GET /readyz", s.readyz)
	// The OpenAPI description of every endpoint memoflow serves.
	s.Mux.Handle("GET "+openapi.Path, openapi.Handler())
	// Go's profiler, for `go tool pprof http://host/debug/pprof/profile`.
	// The HTTP address is an operator interface (127.0.0.1 by default).
	s.Mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.Mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.Mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.Mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return s
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	s.checks[name] = c
	s.mu.Unlock()
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := http.StatusOK
	body := ""
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			status = http.StatusServiceUnavailable
			body += fmt.Sprintf("%s: not ready: %v\n", n, err)
		} else {
			body += n + ": ok\n"
		}
	}
	if len(names) == 0 {
		status, body = http.StatusServiceUnavailable, "starting\n"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

// ErrAddrInUse is returned by Listen when the address is taken.
var ErrAddrInUse = errors.New("already in use")

// TLSConfig enables HTTPS and, with ClientCAFile, mutual TLS.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether HTTPS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// Validate names the missing half of a pair.
func (c TLSConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("http.tls_cert_file and http.tls_key_file: set both for HTTPS, or neither")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return errors.New("http.tls_client_ca_file: mutual TLS needs --http-tls-cert-file and --http-tls-key-file too")
	}
	return nil
}

// Config builds the tls.Config: TLS 1.2+, and with a client CA every client
// must present a certificate it signed.
func (c TLSConfig) Config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("http tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("http tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http tls client CA: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// ListenTLS is Listen with HTTPS (and mutual TLS when configured).
func (s *Server) ListenTLS(addr string, c TLSConfig) error {
	if !c.Enabled() {
		return s.Listen(addr)
	}
	tc, err := c.Config()
	if err != nil {
		return err
	}
	s.tls = tc
	return s.Listen(addr)
}

// Listen binds addr (so a port in use is reported before anything starts)
// and serves in the background.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("http: %s is %w; stop what uses it or choose another with --http-addr", addr, ErrAddrInUse)
		}
		return fmt.Errorf("http: listen on %s: %w", addr, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting and waits for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}
