package deploy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/memoflow/memoflow/stages/deliver"
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
		t.Errorf("secrets/function_cert.pem / function_key.pem do not load as deliver loads them (run secrets/generate.sh transport): %v", err)
	} else {
		mc.Close()
	}
}

func TestKubernetesTransportCredentials(t *testing.T) {
	secrets := secretKeys(t)
	if keys := secrets["memoflow-transport"]; len(keys) != 3 {
		t.Fatalf("create-secrets.sh makes memoflow-transport with keys %v, want ssh-key, function-cert, function-key", keys)
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
