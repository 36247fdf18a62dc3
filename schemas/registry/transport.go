package registry

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Shape checks for the SFTP and SMTP fields of a System. They are static:
// nothing here depends on the clock (a certificate's validity is checked
// by the transport on every message), so a value that passed once passes
// again when memo.registry is replayed.

// ParseHostPort splits an sftp:// or smtp:// endpoint into host and port
// (def when the URL gives none).
func ParseHostPort(endpoint, scheme string, def int) (host string, port int, err error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", 0, err
	}
	if u.Scheme != scheme || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", 0, fmt.Errorf("%q is not %s://host[:port] without user, path or query", endpoint, scheme)
	}
	host, port = u.Hostname(), def
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("port %q out of range", p)
		}
		port = n
	}
	return host, port, nil
}

// HostPort is ParseHostPort joined as host:port ("" if it does not parse).
func HostPort(endpoint, scheme string, def int) string {
	h, p, err := ParseHostPort(endpoint, scheme, def)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(h, strconv.Itoa(p))
}

func validUser(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func absPath(p string) bool {
	if p == "" || len(p) > 1024 || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n\r") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return false
		}
	}
	return path.Clean(p) == p || path.Clean(p)+"/" == p
}

// checkHostKeys wants one or two public keys in authorized_keys form, no
// certificates, RSA at least 2048 bits: the same rules as the SFTP
// transport's pin (stages/transport/sftp), checked at write time so a bad
// pin is refused by the admin API, not discovered at the first delivery.
func checkHostKeys(s string) error {
	if strings.TrimSpace(s) == "" {
		return errf(CodeBadSFTP, "ssh_host_key", "an SFTP system needs the server's host key (authorized_keys form, e.g. \"ssh-ed25519 AAAA...\"); there is no accept-any mode")
	}
	if len(s) > 16<<10 {
		return errf(CodeBadSFTP, "ssh_host_key", "host keys above 16 KiB")
	}
	n := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		n++
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return errf(CodeBadSFTP, "ssh_host_key", "line %d is not a public key in authorized_keys form: %v", n, err)
		}
		if _, ok := k.(*ssh.Certificate); ok {
			return errf(CodeBadSFTP, "ssh_host_key", "line %d is an SSH certificate; pin the host's public key itself", n)
		}
		if ck, ok := k.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
				return errf(CodeBadSFTP, "ssh_host_key", "line %d is an RSA key of %d bits; at least 2048", n, rk.N.BitLen())
			}
		}
	}
	if n > 2 {
		return errf(CodeBadSFTP, "ssh_host_key", "%d host keys; pin one, or two while the server changes its key", n)
	}
	return nil
}

// checkCertificate wants the system's certificate as PEM (an RSA key, for
// S/MIME key transport) or a secret:/file: reference to it.
func checkCertificate(s string) error {
	switch {
	case s == "":
		return errf(CodeBadSMTP, "certificate", "an SMTP system needs its OCES certificate (PEM, or a secret:/file: reference) to encrypt to")
	case strings.HasPrefix(s, "secret:") || strings.HasPrefix(s, "file:"):
		if err := checkCredentials(s); err != nil || strings.HasPrefix(s, "sha256:") {
			return errf(CodeBadSMTP, "certificate", "a certificate reference is secret:<name> or file:<path>")
		}
		return nil
	case len(s) > 64<<10:
		return errf(CodeBadSMTP, "certificate", "certificate PEM above 64 KiB")
	}
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return errf(CodeBadSMTP, "certificate", "not a PEM CERTIFICATE block (convert a .p12 with: openssl pkcs12 -in x.p12 -nokeys -out cert.pem)")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return errf(CodeBadSMTP, "certificate", "the certificate does not parse: %v", err)
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return errf(CodeBadSMTP, "certificate", "the certificate's key is %T; S/MIME encryption here needs RSA", c.PublicKey)
	}
	return nil
}
