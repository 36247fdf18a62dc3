package deploy

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// The SFTP and SMTP credentials (memoflow's SSH key, its function
// certificate and key) reach the two stages that use them, in both
// deployments: deliver (both) and pull-api (the SSH key only: it polls
// SFTP receipt folders), and nothing else gets them.

// transportEnv is what each stage must have set: variable -> the Secret
// key (k8s) its file comes from.
var transportEnv = map[string]map[string]string{
	"deliver": {
		"MEMOFLOW_SFTP_KEY_FILE":  "ssh-key",
		"MEMOFLOW_SMTP_CERT_FILE": "function-cert",
		"MEMOFLOW_SMTP_KEY_FILE":  "function-key",
		"MEMOFLOW_SMTP_FROM":      "",
		// --smtp-recipient-ca-file: the OCES CAs (recipientCAFlag).
		"MEMOFLOW_SMTP_RECIPIENT_CA_FILE": "recipient-ca",
	},
	"pull-api": {
		"MEMOFLOW_SFTP_KEY_FILE": "ssh-key",
	},
}

func TestComposeTransportCredentials(t *testing.T) {
	p := loadCompose(t)
	svcs := memoflowServices(t, p)
	for name, s := range svcs {
		if len(s.Command) < 2 || s.Command[0] != "stage" {
			continue
		}
		want := transportEnv[s.Command[1]]
		for k := range transportEnv["deliver"] {
			if _, has := s.Environment[k]; has && want == nil {
				t.Errorf("%s: sets %s, which only deliver and pull-api use", name, k)
			}
		}
		for k := range want {
			if v := s.Environment[k]; v == nil || *v == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
	}
	// The committed stand-ins load with the loaders the deliver stage uses
	// at start (a wrong key usage, an expired certificate or a key that
	// does not belong to it would stop deliver in the compose setup).
	d := svcs["deliver"]
	hostFile := map[string]string{}
	for _, sc := range d.Secrets {
		if def, ok := p.Secrets[sc.Source]; ok {
			hostFile[secretPath(sc)] = def.File
		}
	}
	env := func(k string) string {
		if v := d.Environment[k]; v != nil {
			if f, ok := hostFile[*v]; ok {
				return f
			}
			return *v
		}
		return ""
	}
	cfg := deliver.DefaultConfig()
	cfg.SFTPKeyFile = env("MEMOFLOW_SFTP_KEY_FILE")
	cfg.SMTPCertFile, cfg.SMTPKeyFile, cfg.SMTPFrom = env("MEMOFLOW_SMTP_CERT_FILE"), env("MEMOFLOW_SMTP_KEY_FILE"), env("MEMOFLOW_SMTP_FROM")
	cfg.SMTPRecipientCAFile = env("MEMOFLOW_SMTP_RECIPIENT_CA_FILE")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deliver's transport settings: %v", err)
	}
	sc, err := deliver.NewSFTPClient(cfg)
	if err != nil || sc == nil {
		t.Errorf("secrets/memoflow_ssh_key does not load as deliver loads it (run secrets/generate.sh transport): %v", err)
	} else {
		if !strings.HasPrefix(sc.PublicKey(), "ssh-ed25519 ") {
			t.Errorf("the SSH key is %q, want the ed25519 key generate.sh makes", sc.PublicKey())
		}
		sc.Close()
	}
	mc, err := deliver.NewSMTPClient(cfg)
	if err != nil || mc == nil {
		t.Errorf("secrets/function_cert.pem / function_key.pem / oces_ca.pem do not load as deliver loads them (run secrets/generate.sh transport): %v", err)
	} else {
		mc.Close()
	}
}

func TestKubernetesTransportCredentials(t *testing.T) {
	secrets := secretKeys(t)
	wantKeys := []string{"function-cert", "function-key", "recipient-ca", "ssh-key"}
	if keys := slices.Sorted(slices.Values(secrets["memoflow-transport"])); !slices.Equal(keys, wantKeys) {
		t.Fatalf("create-secrets.sh makes memoflow-transport with keys %v, want %v", keys, wantKeys)
	}
	d := decode(t, build(t, "k8s/overlays/production"))
	for name, dep := range d.deployments {
		spec := dep.Spec.Template.Spec
		c := spec.Containers[0]
		want := transportEnv[c.Args[1]]
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		for _, v := range spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "memoflow-transport" && want == nil {
				t.Errorf("%s mounts memoflow-transport, which only deliver and pull-api need", name)
			}
		}
		for k, key := range want {
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == k })
			if i < 0 || c.Env[i].Value == "" {
				t.Errorf("%s: %s is not set", name, k)
				continue
			}
			if key == "" {
				continue
			}
			path := c.Env[i].Value
			if !strings.HasSuffix(path, "/"+key) || !fileMounted(path, c.VolumeMounts, vols, map[string][]string{"memoflow-transport": {key}}) {
				t.Errorf("%s: %s=%s is not key %s of Secret memoflow-transport", name, k, path, key)
			}
		}
		// pull-api gets the SSH key only, not the certificate's key.
		if c.Args[1] == "pull-api" {
			for _, v := range spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "memoflow-transport" &&
					(len(v.Secret.Items) == 0 || slices.ContainsFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return it.Key != "ssh-key" })) {
					t.Errorf("%s: mounts more of memoflow-transport than ssh-key", name)
				}
			}
		}
	}
}

// recipientCAFlag is deliver's flag for the OCES CAs that SMTP recipient
// systems' certificates must chain to. Without it deliver encrypts to any
// certificate a registry entry holds: production must set it.
const recipientCAFlag = "smtp-recipient-ca-file"

// flagValue is what a command line and its environment set for a memoflow
// flag: --flag=V or --flag V on the command line, else the MEMOFLOW_*
// variable (memoflow lets the command line win).
func flagValue(args []string, env func(string) (string, bool), flag string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v, true
		}
		if a == "--"+flag && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return env(envName(flag))
}

// In the production overlay deliver checks recipient systems' certificates
// against the OCES CAs: --smtp-recipient-ca-file names key recipient-ca of
// Secret memoflow-transport, mounted, and not optionally (a Secret without
// it keeps the new pod from starting rather than starting it unchecked).
func TestKubernetesDeliverChecksRecipientCertificates(t *testing.T) {
	if !slices.Contains(secretKeys(t)["memoflow-transport"], "recipient-ca") {
		t.Fatal("create-secrets.sh does not put recipient-ca into memoflow-transport")
	}
	d := decode(t, build(t, "k8s/overlays/production"))
	n := 0
	for name, dep := range d.deployments {
		spec := dep.Spec.Template.Spec
		c := spec.Containers[0]
		if len(c.Args) < 2 || c.Args[0] != "stage" || c.Args[1] != "deliver" {
			continue
		}
		n++
		path, ok := flagValue(c.Args, func(k string) (string, bool) {
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == k })
			if i < 0 || c.Env[i].ValueFrom != nil {
				return "", false
			}
			return c.Env[i].Value, true
		}, recipientCAFlag)
		if !ok || path == "" {
			t.Errorf("%s: neither --%s nor %s is set: deliver would encrypt to any certificate a registry entry holds", name, recipientCAFlag, envName(recipientCAFlag))
			continue
		}
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
			if v.Secret != nil && v.Secret.SecretName == "memoflow-transport" && v.Secret.Optional != nil && *v.Secret.Optional {
				t.Errorf("%s: volume %s mounts memoflow-transport as optional: without it deliver must not start", name, v.Name)
			}
		}
		if !fileMounted(path, c.VolumeMounts, vols, map[string][]string{"memoflow-transport": {"recipient-ca"}}) {
			t.Errorf("%s: --%s=%s is not key recipient-ca of Secret memoflow-transport mounted into the pod", name, recipientCAFlag, path)
		}
	}
	if n != 1 {
		t.Errorf("the production overlay has %d deliver Deployments, want 1", n)
	}
}

// In compose deliver gets the development CA bundle, and it does what it
// is for: deliver's SMTP client, built from the compose service's settings
// and files, mails a system whose certificate comes from the bundle's
// issuing CA (secrets/recipient_cert.pem) and refuses one whose does not.
// The system's server trusts memoflow's signature through the same CAs,
// as a real one trusts a FOCES certificate through OCES.
func TestComposeDeliverChecksRecipientCertificates(t *testing.T) {
	p := loadCompose(t)
	d := memoflowServices(t, p)["deliver"]
	env := func(k string) (string, bool) {
		if v := d.Environment[k]; v != nil {
			return *v, true
		}
		return "", false
	}
	hostFile := func(k string) string {
		path, ok := flagValue(d.Command, env, k)
		if !ok || path == "" {
			t.Fatalf("compose deliver: --%s is not set", k)
		}
		for _, sc := range d.Secrets {
			if def, ok := p.Secrets[sc.Source]; ok && secretPath(sc) == path {
				return def.File
			}
		}
		t.Fatalf("compose deliver: --%s=%s is not a mounted secret", k, path)
		return ""
	}
	cfg := deliver.DefaultConfig()
	cfg.SMTPRecipientCAFile = hostFile(recipientCAFlag)
	cfg.SMTPCertFile, cfg.SMTPKeyFile = hostFile("smtp-cert-file"), hostFile("smtp-key-file")
	cfg.SMTPFrom, _ = flagValue(d.Command, env, "smtp-from")
	bundle, err := os.ReadFile(cfg.SMTPRecipientCAFile)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := smtp.ParseCerts(bundle)
	if err != nil {
		t.Fatalf("%s: %v", cfg.SMTPRecipientCAFile, err)
	}
	trusted := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			t.Errorf("%s: %s is not a CA certificate (run secrets/generate.sh transport)", cfg.SMTPRecipientCAFile, c.Subject)
		}
		trusted.AddCert(c)
	}
	recipient, err := smtp.LoadIdentity("compose/secrets/recipient_cert.pem", "compose/secrets/recipient_key.pem")
	if err != nil {
		t.Fatalf("secrets/recipient_cert.pem: %v (run secrets/generate.sh transport)", err)
	}
	srv, err := smtp.NewServer(smtp.ServerConfig{Recipient: recipient, Trusted: trusted})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg.SMTPTLSCAFile = filepath.Join(t.TempDir(), "server-ca.pem")
	if err := os.WriteFile(cfg.SMTPTLSCAFile, srv.TLSCertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cl, err := deliver.NewSMTPClient(cfg)
	if err != nil {
		t.Fatalf("deliver does not start with the compose files: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const fromCA, outside = "0b6f3b8e-5c7a-4d2e-9a41-3f2d1c0b9e8a", "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
	memo := []byte("<MeMo>compose recipient CA check</MeMo>")
	sys := &smtp.Target{SystemID: "compose-oces", Addr: srv.Addr(), To: "post@system.example", CertPEM: recipient.CertPEM()}
	if err := cl.Deliver(ctx, sys, fromCA, memo); err != nil {
		t.Fatalf("mail to a system whose certificate is from the bundle's CA: %v", err)
	}
	if n := srv.Count(fromCA); n != 1 {
		t.Errorf("the system received %d mails, want 1 (rejected: %v)", n, srv.Rejected())
	}
	now := time.Now()
	stranger, err := smtp.GenerateIdentity("not from the OCES CAs", now.Add(-time.Hour), now.Add(24*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := &smtp.Target{SystemID: "compose-stranger", Addr: srv.Addr(), To: "post@system.example", CertPEM: stranger.CertPEM()}
	err = cl.Deliver(ctx, other, outside, memo)
	var te *transport.Error
	if !errors.As(err, &te) || te.Code != transport.CodeCertInvalid || te.Outcome != transport.Permanent {
		t.Errorf("mail to a system whose certificate is not from the bundle: %v, want a permanent %s", err, transport.CodeCertInvalid)
	}
	if n := srv.Count(outside); n != 0 {
		t.Errorf("the stranger's mail was sent (%d)", n)
	}
}
