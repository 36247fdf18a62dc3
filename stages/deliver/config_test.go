package deliver

import (
	"strings"
	"testing"
)

// TestConfigTransportFlags: the SFTP/SMTP settings are checked together,
// and each error names the field and the flag that fixes it.
func TestConfigTransportFlags(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Config)
		want string // "" = valid
	}{
		{"none: SFTP/SMTP messages fail, the stage starts", func(*Config) {}, ""},
		{"smtp complete", func(c *Config) {
			c.SMTPCertFile, c.SMTPKeyFile, c.SMTPFrom = "c.pem", "k.pem", "digitalpost@memoflow.example"
		}, ""},
		{"cert without key", func(c *Config) { c.SMTPCertFile, c.SMTPFrom = "c.pem", "a@b.dk" }, "deliver.smtp_key_file"},
		{"key without cert", func(c *Config) { c.SMTPKeyFile = "k.pem" }, "deliver.smtp_cert_file"},
		{"no from", func(c *Config) { c.SMTPCertFile, c.SMTPKeyFile = "c.pem", "k.pem" }, "--smtp-from"},
		{"from with a name", func(c *Config) {
			c.SMTPCertFile, c.SMTPKeyFile, c.SMTPFrom = "c.pem", "k.pem", "Digital Post <a@b.dk>"
		}, "deliver.smtp_from"},
		{"CA without cert", func(c *Config) { c.SMTPTLSCAFile = "ca.pem" }, "deliver.smtp_cert_file"},
		{"negative poll", func(c *Config) { c.SFTPReceiptPoll = -1 }, "deliver.sftp_receipt_poll"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.set(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestClientsFromFiles: bad key or certificate files fail NewDeliverer at
// start (not at the first message), naming the flag.
func TestClientsFromFiles(t *testing.T) {
	c := testConfig()
	c.SFTPKeyFile = "/nonexistent/key"
	if _, err := NewDeliverer(c, NewStaticSystems(), testPseudo(t)); err == nil || !strings.Contains(err.Error(), "sftp_key_file") {
		t.Fatalf("missing SSH key file: %v", err)
	}
	c = testConfig()
	c.SMTPCertFile, c.SMTPKeyFile, c.SMTPFrom = "/nonexistent/c.pem", "/nonexistent/k.pem", "a@b.dk"
	if _, err := NewDeliverer(c, NewStaticSystems(), testPseudo(t)); err == nil || !strings.Contains(err.Error(), "smtp_cert_file") {
		t.Fatalf("missing certificate file: %v", err)
	}
}
