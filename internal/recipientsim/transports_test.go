package recipientsim

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/memoflow/memoflow/stages/transport/sftp"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// TestTransportRecipients: the simulated SFTP and SMTP systems take a
// message from clients configured exactly as Describe tells memoflow to
// be (key file, certificate files, TLS CA file), and the key material
// survives a restart unchanged.
func TestTransportRecipients(t *testing.T) {
	dir := t.TempDir()
	keys, err := LoadTransportKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := StartSFTP(keys, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ms, err := StartSMTP(keys, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	for _, s := range []string{fs.Describe(), ms.Describe()} {
		if !strings.Contains(s, "registry entry") || !strings.Contains(s, keys.Dir) {
			t.Fatalf("description lacks the registry entry or the key files:\n%s", s)
		}
	}
	const uuid = "00000000-0000-4000-8000-000000000001"
	sc, err := sftp.New(sftp.Config{KeyFile: keys.SSHKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Deliver(context.Background(), fs.Target("sim"), uuid, []byte("<memo/>")); err != nil || fs.Count(uuid) != 1 {
		t.Fatalf("SFTP: %v, count %d", err, fs.Count(uuid))
	}
	ca, _ := os.ReadFile(ms.TLSCAFile)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("TLS CA file holds no certificate")
	}
	mc, err := smtp.New(smtp.Config{CertFile: keys.FunctionCertFile, KeyFile: keys.FunctionKeyFile, From: "digitalpost@memoflow.example", TLSRoots: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	tgt := &smtp.Target{SystemID: "sim", Addr: ms.Addr(), To: ms.Address, CertPEM: []byte(ms.CertificatePEM())}
	if err := mc.Deliver(context.Background(), tgt, uuid, []byte("<memo/>")); err != nil || ms.Count(uuid) != 1 {
		t.Fatalf("SMTP: %v, count %d", err, ms.Count(uuid))
	}
	again, err := LoadTransportKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.HostKey.PublicKey().Marshal()) != string(keys.HostKey.PublicKey().Marshal()) ||
		!again.System.Cert.Equal(keys.System.Cert) || !again.Function.Cert.Equal(keys.Function.Cert) {
		t.Fatal("key material changed on reload")
	}
}
