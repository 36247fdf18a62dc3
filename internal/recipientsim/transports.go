package recipientsim

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/stages/transport/sftp"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// Key material of simulated SFTP and SMTP recipient systems, made once and
// kept in a directory, so a restarted simulator (or `memoflow run`'s demo)
// keeps the registry entries and memoflow's flags valid. Test keys: never
// for production.
const (
	fileSSHKey      = "memoflow_ssh_key"      // memoflow's SSH key: --sftp-key-file
	fileSSHHostKey  = "sftp_host_key"         // the simulated SFTP server's host key
	fileFuncCert    = "memoflow_function.pem" // memoflow's function certificate: --smtp-cert-file
	fileFuncKey     = "memoflow_function.key" // its key: --smtp-key-file
	fileSystemCert  = "smtp_system.pem"       // the simulated SMTP system's certificate (registry "certificate")
	fileSystemKey   = "smtp_system.key"
	fileSMTPTLSRoot = "smtp_tls_ca.pem" // the simulated mail server's TLS certificate: --smtp-tls-ca-file
)

// TransportKeys is the key material in Dir.
type TransportKeys struct {
	Dir string
	// SSHKeyFile is memoflow's SSH private key; SSHClient its signer (the
	// key the SFTP server authorizes).
	SSHKeyFile string
	SSHClient  ssh.Signer
	HostKey    ssh.Signer
	// FunctionCertFile/FunctionKeyFile: memoflow's (test) function
	// certificate; Function the parsed identity the SMTP server trusts.
	FunctionCertFile, FunctionKeyFile string
	Function                          *smtp.Identity
	// System is the SMTP system's certificate and key: mail is encrypted
	// to it and the server decrypts with it.
	System *smtp.Identity
}

// LoadTransportKeys loads the key material from dir, making what is
// missing or expired (RSA keys take a moment: only the first start pays).
func LoadTransportKeys(dir string) (*TransportKeys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k := &TransportKeys{Dir: dir, SSHKeyFile: filepath.Join(dir, fileSSHKey),
		FunctionCertFile: filepath.Join(dir, fileFuncCert), FunctionKeyFile: filepath.Join(dir, fileFuncKey)}
	var err error
	if k.SSHClient, err = sshKey(k.SSHKeyFile); err != nil {
		return nil, err
	}
	if k.HostKey, err = sshKey(filepath.Join(dir, fileSSHHostKey)); err != nil {
		return nil, err
	}
	if k.Function, err = identity(k.FunctionCertFile, k.FunctionKeyFile, "memoflow test function certificate"); err != nil {
		return nil, err
	}
	if k.System, err = identity(filepath.Join(dir, fileSystemCert), filepath.Join(dir, fileSystemKey), "simulated SMTP recipient system"); err != nil {
		return nil, err
	}
	return k, nil
}

func sshKey(file string) (ssh.Signer, error) {
	if b, err := os.ReadFile(file); err == nil {
		return ssh.ParsePrivateKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "memoflow simulator")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

func identity(certFile, keyFile, cn string) (*smtp.Identity, error) {
	if id, err := smtp.LoadIdentity(certFile, keyFile); err == nil && time.Now().Add(24*time.Hour).Before(id.Cert.NotAfter) {
		return id, nil
	}
	now := time.Now()
	id, err := smtp.GenerateIdentity(cn, now.Add(-time.Hour), now.AddDate(1, 0, 0), nil)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, id.KeyPEM(), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, id.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return id, nil
}

// SFTPRecipient is a running simulated SFTP recipient system.
type SFTPRecipient struct {
	*sftp.Server
	Root string
	keys *TransportKeys
}

// StartSFTP serves root over SFTP on addr ("" = 127.0.0.1:0), accepting
// memoflow's key from keys plus any extra authorized keys.
func StartSFTP(keys *TransportKeys, root, addr string, extra ...ssh.PublicKey) (*SFTPRecipient, error) {
	srv, err := sftp.NewServer(sftp.ServerConfig{Root: root, Addr: addr, HostKey: keys.HostKey,
		AuthorizedKeys: append([]ssh.PublicKey{keys.SSHClient.PublicKey()}, extra...)})
	if err != nil {
		return nil, err
	}
	return &SFTPRecipient{Server: srv, Root: root, keys: keys}, nil
}

// Endpoint is the registry endpoint of the server.
func (r *SFTPRecipient) Endpoint() string { return "sftp://" + r.Addr() }

// Describe says what the registry entry and memoflow need.
func (r *SFTPRecipient) Describe() string {
	t := r.Target("")
	var b strings.Builder
	fmt.Fprintf(&b, "SFTP recipient system on %s (files under %s)\n", r.Endpoint(), r.Root)
	fmt.Fprintf(&b, "registry entry (admin API JSON):\n  {\"protocol\":\"SFTP\",\"endpoint\":%q,\"sftpUser\":%q,\"sshHostKey\":%q,\"folder\":%q,\"receiptFolder\":%q}\n",
		r.Endpoint(), t.User, r.HostKey(), t.Folder, t.ReceiptFolder)
	fmt.Fprintf(&b, "memoflow (deliver and pull-api stages): --sftp-key-file %s\n", r.keys.SSHKeyFile)
	fmt.Fprintf(&b, "authorized client key (memoflow's): %s\n", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.keys.SSHClient.PublicKey()))))
	fmt.Fprintf(&b, "receipt files: write receipt JSON ({\"messageUUID\",\"receiptStatus\":\"COMPLETED\"|\"FAILED\",\"errorCode\"}) as %s/<name>.json\n",
		filepath.Join(r.Root, filepath.FromSlash(t.ReceiptFolder)))
	return b.String()
}

// SMTPRecipient is a running simulated SMTP recipient system.
type SMTPRecipient struct {
	*smtp.Server
	Address   string
	TLSCAFile string
	keys      *TransportKeys
}

// StartSMTP runs a mail server on addr ("" = 127.0.0.1:0) that decrypts
// with the system's key and verifies memoflow's signature (plus extra
// trusted signers). Its TLS certificate is written to the key directory
// (--smtp-tls-ca-file). It counts mails and keeps no MeMo bytes, so a
// long run's memory stays flat.
func StartSMTP(keys *TransportKeys, addr string, extraTrusted ...*x509.Certificate) (*SMTPRecipient, error) {
	pool := x509.NewCertPool()
	pool.AddCert(keys.Function.Cert)
	for _, c := range extraTrusted {
		pool.AddCert(c)
	}
	srv, err := smtp.NewServer(smtp.ServerConfig{Addr: addr, Recipient: keys.System, Trusted: pool, DiscardMemos: true})
	if err != nil {
		return nil, err
	}
	r := &SMTPRecipient{Server: srv, Address: "digitalpost@recipient.example", TLSCAFile: filepath.Join(keys.Dir, fileSMTPTLSRoot), keys: keys}
	if err := os.WriteFile(r.TLSCAFile, srv.TLSCertPEM(), 0o644); err != nil {
		_ = srv.Close()
		return nil, err
	}
	return r, nil
}

// Endpoint is the registry endpoint of the server.
func (r *SMTPRecipient) Endpoint() string { return "smtp://" + r.Addr() }

// CertificatePEM is the system's certificate: the registry's "certificate".
func (r *SMTPRecipient) CertificatePEM() string { return string(r.keys.System.CertPEM()) }

// Describe says what the registry entry and memoflow need.
func (r *SMTPRecipient) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SMTP recipient system on %s (STARTTLS, S/MIME)\n", r.Endpoint())
	fmt.Fprintf(&b, "registry entry (admin API JSON):\n  {\"protocol\":\"SMTP\",\"endpoint\":%q,\"smtpAddress\":%q,\"certificate\":%q}\n",
		r.Endpoint(), r.Address, r.CertificatePEM())
	fmt.Fprintf(&b, "memoflow (deliver stage): --smtp-cert-file %s --smtp-key-file %s --smtp-from digitalpost@memoflow.example --smtp-tls-ca-file %s\n",
		r.keys.FunctionCertFile, r.keys.FunctionKeyFile, r.TLSCAFile)
	fmt.Fprintf(&b, "the server trusts signatures by %q (%s)\n", r.keys.Function.Cert.Subject.CommonName, r.keys.FunctionCertFile)
	return b.String()
}
