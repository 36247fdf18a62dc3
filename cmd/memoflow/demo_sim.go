package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/memoflow/memoflow/internal/recipientsim"
)

// The demo's own HTTP recipient simulator (internal/recipientsim, the
// handler `memoflow sim recipient` serves), started in-process by
// `memoflow run`: the demo supplier's standard system pushes to it over
// plain HTTP, and the demo's pickup-forwarding companies' post is POSTed
// to it over HTTPS (a pickup URL must be https, schemas/registry
// Forwarding). Its TLS certificate is made at every start and trusted by
// this process's forward stage only (demoRecipientSim.forwardClient, on
// top of the system roots), so nothing outside the process has to trust a
// test certificate.
//
// Both listeners try the addresses of the previous start first (kept in
// <var>/demo/recipient-sim.addr): the registry entries that name them
// stay valid across restarts, and forwards waiting in memo.forward.retry
// still reach the pickup URL they carry. When a port is taken, a free one
// is used and the entries are rewritten (demo_standard.go).
type demoRecipientSim struct {
	sim       *recipientsim.Sim
	httpAddr  string // plain HTTP: REST_PUSH of the demo standard system
	httpsAddr string // TLS: the demo's pickup URL
	cert      *x509.Certificate
}

const demoSimAddrFile = "recipient-sim.addr"

// startDemoRecipientSim starts the servers; a.close stops them.
func startDemoRecipientSim(a *app) (*demoRecipientSim, error) {
	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		return nil, err
	}
	addrFile := filepath.Join(a.cfg.VarDir, "demo", demoSimAddrFile)
	prevHTTP, prevHTTPS := readDemoSimAddrs(addrFile)
	cert, err := demoTLSCertificate(time.Now())
	if err != nil {
		return nil, fmt.Errorf("demo recipient simulator: %w", err)
	}
	d := &demoRecipientSim{sim: sim, cert: cert.Leaf}
	plain, err := listenPreferring(prevHTTP)
	if err != nil {
		return nil, fmt.Errorf("demo recipient simulator: %w", err)
	}
	secure, err := listenPreferring(prevHTTPS)
	if err != nil {
		_ = plain.Close()
		return nil, fmt.Errorf("demo recipient simulator: %w", err)
	}
	d.httpAddr, d.httpsAddr = plain.Addr().String(), secure.Addr().String()
	h := sim.Handler()
	srvHTTP := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	srvTLS := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srvHTTP.Serve(plain) }()
	go func() {
		_ = srvTLS.Serve(tls.NewListener(secure, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}()
	a.closers = append(a.closers, func() { _ = srvHTTP.Close(); _ = srvTLS.Close() })
	if err := os.MkdirAll(filepath.Dir(addrFile), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(addrFile, []byte("http "+d.httpAddr+"\nhttps "+d.httpsAddr+"\n"), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// pushURL is the REST_PUSH endpoint of system on the simulator.
func (d *demoRecipientSim) pushURL(system string) string {
	return "http://" + d.httpAddr + recipientsim.PushPath(system)
}

// pickupURL is a pickup URL (https) on the simulator; its path names the
// system the simulator counts the POSTs under.
func (d *demoRecipientSim) pickupURL(system string) string {
	return "https://" + d.httpsAddr + recipientsim.PushPath(system)
}

// statsURL answers what the simulator received (GET, JSON).
func (d *demoRecipientSim) statsURL() string { return "http://" + d.httpAddr + "/stats" }

// forwardClient is the forward stage's HTTP client in the demo: the
// stage's own transport settings (stages/forward New), trusting the
// system roots plus the simulator's certificate, so real pickup systems
// still verify as they would without the demo.
func (d *demoRecipientSim) forwardClient(perTarget int) *http.Client {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AddCert(d.cert)
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: perTarget, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// readDemoSimAddrs reads the previous start's addresses ("" when none).
func readDemoSimAddrs(path string) (plain, secure string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "http":
			plain = v
		case "https":
			secure = v
		}
	}
	return plain, secure
}

// listenPreferring listens on prev when it is a loopback address that is
// free, else on a free loopback port.
func listenPreferring(prev string) (net.Listener, error) {
	if host, _, err := net.SplitHostPort(prev); err == nil && host == "127.0.0.1" {
		if ln, err := net.Listen("tcp", prev); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// demoTLSCertificate is a self-signed certificate for 127.0.0.1 and
// localhost (P-256: made in a millisecond, so at every start).
func demoTLSCertificate(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "memoflow demo recipient simulator", Organization: []string{"memoflow demo (test certificate)"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
		// Its own issuer: a root the forward client is given.
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
