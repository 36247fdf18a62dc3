package deploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// k8s/create-secrets.sh, run for real against a fake kubectl
// (testdata/fakekubectl: Secrets in a directory): the OCES CA bundle is
// checked before anything is applied, a bad one is refused with a message
// that says what is wrong, and --production insists on one.

// fakeSecret is a Secret as testdata/fakekubectl stores it.
type fakeSecret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   fakeMeta          `json:"metadata"`
	Data       map[string]string `json:"data"`
}

type fakeMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// cluster is the fake kubectl's state directory.
type cluster string

func (c cluster) put(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	s := fakeSecret{APIVersion: "v1", Kind: "Secret", Metadata: fakeMeta{name, ns}, Data: map[string]string{}}
	for k, v := range data {
		s.Data[k] = base64.StdEncoding.EncodeToString(v)
	}
	b, _ := json.Marshal(s)
	dir := filepath.Join(string(c), "namespaces", ns)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// get returns a Secret's data, decoded; nil when there is none.
func (c cluster) get(t *testing.T, ns, name string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(c), "namespaces", ns, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var s fakeSecret
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, v := range s.Data {
		if out[k], err = base64.StdEncoding.DecodeString(v); err != nil {
			t.Fatalf("%s/%s key %s: %v", ns, name, k, err)
		}
	}
	return out
}

// secrets lists the Secrets of a namespace.
func (c cluster) secrets(t *testing.T, ns string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(string(c), "namespaces", ns))
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	return out
}

// caCert makes a certificate in PEM: a CA unless leaf; keyUsage 0 means
// certificate and CRL signing for a CA, digital signature for a leaf.
func caCert(t *testing.T, cn string, notAfter time.Time, leaf bool, keyUsage x509.KeyUsage) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"create-secrets test"}},
		NotBefore:             notAfter.Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  !leaf,
		KeyUsage:              keyUsage,
	}
	if keyUsage == 0 {
		tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		if leaf {
			tpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// fakeKubectl builds testdata/fakekubectl into a directory of its own,
// to be put first on PATH.
func fakeKubectl(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl"), "./testdata/fakekubectl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./testdata/fakekubectl: %v\n%s", err, out)
	}
	return dir
}

// toolsWithout is a directory of links to the commands create-secrets.sh
// uses, except those named: a PATH on which, say, openssl is missing.
func toolsWithout(t *testing.T, missing ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range []string{"bash", "env", "mktemp", "rm", "awk", "cat", "sed", "tr", "base64", "head", "grep", "wc", "chmod", "mkdir", "openssl", "ssh-keygen"} {
		if slices.Contains(missing, tool) {
			continue
		}
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s is not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCreateSecretsOCESBundle(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	kubectl := fakeKubectl(t)
	files := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	devBundle := read("compose/secrets/oces_ca.pem") // what generate.sh makes
	rotated := append(caCert(t, "test OCES issuing CA 2", now.Add(5*365*24*time.Hour), false, 0),
		caCert(t, "test OCES root CA", now.Add(20*365*24*time.Hour), false, 0)...)
	firstDER, _ := pem.Decode(devBundle)
	halfBlock := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: firstDER.Bytes[:len(firstDER.Bytes)/2]})
	devLines := strings.Count(string(devBundle), "\n")
	// The bundle with its first END line dropped.
	firstEnd := strings.Index(string(devBundle), "-----END CERTIFICATE-----\n")
	noEndBundle := string(devBundle[:firstEnd]) + string(devBundle[firstEnd+len("-----END CERTIFICATE-----\n"):])

	var (
		good        = write("oces-ca.pem", devBundle)
		goodRotated = write("oces-ca-2.pem", rotated)
		// A system's own certificate given instead of the CAs.
		leaf         = write("leaf.pem", read("compose/secrets/recipient_cert.pem"))
		garbage      = write("garbage.pem", []byte("this is not a certificate\n"))
		der          = write("ca.cer", firstDER.Bytes)
		withKey      = write("with-key.pem", append(slices.Clone(devBundle), read("compose/secrets/recipient_key.pem")...))
		cutOff       = write("cut-off.pem", append(slices.Clone(devBundle), halfBlock...))
		noEnd        = write("no-end.pem", []byte(noEndBundle))
		notBase64    = write("not-base64.pem", []byte("-----BEGIN CERTIFICATE-----\nthis is ~ not base64 !\n-----END CERTIFICATE-----\n"))
		expired      = write("expired.pem", append(slices.Clone(devBundle), caCert(t, "an expired OCES CA", now.Add(-24*time.Hour), false, 0)...))
		cannotSign   = write("cannot-sign.pem", caCert(t, "a CA that may not sign certificates", now.Add(365*24*time.Hour), false, x509.KeyUsageDigitalSignature))
		sshKey       = "compose/secrets/memoflow_ssh_key"
		funcCert     = "compose/secrets/function_cert.pem"
		funcKey      = "compose/secrets/function_key.pem"
		oldTransport = map[string][]byte{"ssh-key": []byte("old ssh key"), "function-cert": []byte("old cert"),
			"function-key": []byte("old key"), "recipient-ca": []byte("old CA bundle")}
		oldNoCA = map[string][]byte{"ssh-key": []byte("old ssh key"), "function-cert": []byte("old cert"), "function-key": []byte("old key")}
	)
	transportFiles := []string{"SFTP_KEY_FILE=" + sshKey, "FUNCTION_CERT_FILE=" + funcCert, "FUNCTION_KEY_FILE=" + funcKey}
	withFiles := func(extra ...string) []string { return append(slices.Clone(transportFiles), extra...) }

	cases := []struct {
		name       string
		env        []string
		production bool
		existing   map[string][]byte // memoflow-transport before the run
		noOpenSSL  bool
		// wantErr: the run fails, stderr says all of this, and nothing was
		// applied.
		wantErr []string
		// wantWarn: stderr says this.
		wantWarn string
		// want: memoflow-transport after the run (nil: as before).
		want map[string][]byte
	}{
		{name: "good bundle", env: withFiles("OCES_CA_FILE=" + good),
			want: map[string][]byte{"ssh-key": read(sshKey), "function-cert": read(funcCert), "function-key": read(funcKey), "recipient-ca": devBundle}},
		{name: "good bundle, production", env: withFiles("OCES_CA_FILE=" + good), production: true,
			want: map[string][]byte{"ssh-key": read(sshKey), "function-cert": read(funcCert), "function-key": read(funcKey), "recipient-ca": devBundle}},
		{name: "a system's certificate, not a CA", env: withFiles("OCES_CA_FILE=" + leaf),
			wantErr: []string{"OCES_CA_FILE: block 1 (lines 1-", "CN = memoflow test SMTP recipient system) is not a CA certificate (no basicConstraints CA:TRUE)"}},
		{name: "garbage", env: withFiles("OCES_CA_FILE=" + garbage),
			wantErr: []string{"OCES_CA_FILE has no PEM block"}},
		{name: "DER instead of PEM", env: withFiles("OCES_CA_FILE=" + der),
			wantErr: []string{"openssl x509 -inform DER"}},
		{name: "a private key in the bundle", env: withFiles("OCES_CA_FILE=" + withKey),
			wantErr: []string{fmt.Sprintf("OCES_CA_FILE: block 3 (lines %d-", devLines+1), "PRIVATE KEY: a private key does not belong in the CA bundle"}},
		{name: "a certificate cut off", env: withFiles("OCES_CA_FILE=" + cutOff),
			wantErr: []string{fmt.Sprintf("OCES_CA_FILE: block 3 (lines %d-", devLines+1), "does not parse as an X.509 certificate"}},
		{name: "no END line", env: withFiles("OCES_CA_FILE=" + noEnd),
			wantErr: []string{"OCES_CA_FILE is not a PEM bundle: block 1 (CERTIFICATE) has no END line"}},
		{name: "an expired CA", env: withFiles("OCES_CA_FILE=" + expired),
			wantErr: []string{"(O = create-secrets test, CN = an expired OCES CA) has expired"}},
		{name: "a CA that may not sign", env: withFiles("OCES_CA_FILE=" + cannotSign),
			wantErr: []string{"is not allowed to sign certificates"}},
		{name: "missing file", env: withFiles("OCES_CA_FILE=" + filepath.Join(files, "nope.pem")),
			wantErr: []string{"OCES_CA_FILE must name a readable file"}},

		{name: "production without a bundle", env: withFiles(), production: true,
			wantErr: []string{"with --production memoflow-transport must have recipient-ca"}},
		{name: "production keeps the existing bundle", env: withFiles(), production: true, existing: oldTransport,
			want: map[string][]byte{"ssh-key": read(sshKey), "function-cert": read(funcCert), "function-key": read(funcKey), "recipient-ca": []byte("old CA bundle")}},
		{name: "production, existing Secret without a bundle", production: true, existing: oldNoCA,
			wantErr: []string{"memoflow-transport exists without recipient-ca"}},
		{name: "production, existing Secret with a bundle", production: true, existing: oldTransport},
		{name: "no bundle outside production", env: withFiles(),
			wantWarn: "memoflow-transport has no recipient-ca",
			want:     map[string][]byte{"ssh-key": read(sshKey), "function-cert": read(funcCert), "function-key": read(funcKey)}},
		{name: "rotation: the bundle alone", env: []string{"OCES_CA_FILE=" + goodRotated}, production: true, existing: oldTransport,
			want: map[string][]byte{"ssh-key": []byte("old ssh key"), "function-cert": []byte("old cert"), "function-key": []byte("old key"), "recipient-ca": rotated}},
		{name: "the bundle alone adds it", env: []string{"OCES_CA_FILE=" + good}, existing: oldNoCA,
			want: map[string][]byte{"ssh-key": []byte("old ssh key"), "function-cert": []byte("old cert"), "function-key": []byte("old key"), "recipient-ca": devBundle}},
		{name: "the bundle alone, no Secret", env: []string{"OCES_CA_FILE=" + good},
			wantErr: []string{"OCES_CA_FILE without the key files replaces recipient-ca of an existing memoflow-transport, and there is none"}},
		{name: "a bad bundle alone", env: []string{"OCES_CA_FILE=" + leaf}, existing: oldTransport,
			wantErr: []string{"is not a CA certificate"}},

		{name: "without openssl: good bundle", env: withFiles("OCES_CA_FILE=" + good), noOpenSSL: true,
			wantWarn: "openssl is not on PATH: OCES_CA_FILE was only checked to hold PEM CERTIFICATE blocks",
			want:     map[string][]byte{"ssh-key": read(sshKey), "function-cert": read(funcCert), "function-key": read(funcKey), "recipient-ca": devBundle}},
		{name: "without openssl: garbage", env: withFiles("OCES_CA_FILE=" + garbage), noOpenSSL: true,
			wantErr: []string{"OCES_CA_FILE has no PEM block"}},
		{name: "without openssl: a private key", env: withFiles("OCES_CA_FILE=" + withKey), noOpenSSL: true,
			wantErr: []string{"a private key does not belong in the CA bundle"}},
		{name: "without openssl: not base64", env: withFiles("OCES_CA_FILE=" + notBase64), noOpenSSL: true,
			wantErr: []string{"OCES_CA_FILE: block 1 (lines 1-3) is not base64"}},
	}
	bash, _ := exec.LookPath("bash")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := cluster(t.TempDir())
			state.put(t, "kafka", "memoflow-cluster-ca-cert", map[string][]byte{"ca.crt": []byte("kafka CA")})
			state.put(t, "kafka", "memoflow", map[string][]byte{"password": []byte("scram password")})
			if tc.existing != nil {
				state.put(t, "memoflow", "memoflow-transport", tc.existing)
			}
			before := state.secrets(t, "memoflow")
			path := kubectl + string(os.PathListSeparator) + os.Getenv("PATH")
			if tc.noOpenSSL {
				path = kubectl + string(os.PathListSeparator) + toolsWithout(t, "openssl", "ssh-keygen")
			}
			tmp, home := t.TempDir(), t.TempDir()
			args := []string{"k8s/create-secrets.sh"}
			if tc.production {
				args = append(args, "--production")
			}
			cmd := exec.Command(bash, args...)
			cmd.Env = append([]string{"PATH=" + path, "HOME=" + home, "TMPDIR=" + tmp, "FAKE_KUBECTL_STATE=" + string(state),
				"CLICKHOUSE_PASSWORD_FILE=" + write("pw", []byte("pw")), "API_TOKENS_FILE=" + write("tokens", []byte("[]")),
				"BLOB_SECRET_KEY_FILE=" + write("blob", []byte("blob")),
				"API_TLS_CERT_FILE=" + write("tls.crt", []byte("tls cert")), "API_TLS_KEY_FILE=" + write("tls.key", []byte("tls key"))},
				tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			out := stdout.String() + stderr.String()
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("the script left %d files in TMPDIR (copies of keys?)", len(left))
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted, want a refusal saying %q:\n%s", tc.wantErr, out)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("refused with\n%s\nwant it to say %q", stderr.String(), w)
					}
				}
				// Checked before anything was applied.
				if after := state.secrets(t, "memoflow"); !slices.Equal(after, before) {
					t.Errorf("refused, but Secrets were applied first: %v, before %v", after, before)
				}
				if tc.existing != nil && !equalData(state.get(t, "memoflow", "memoflow-transport"), tc.existing) {
					t.Error("refused, but memoflow-transport changed")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if tc.wantWarn != "" && !strings.Contains(stderr.String(), tc.wantWarn) {
				t.Errorf("stderr\n%s\nwant it to say %q", stderr.String(), tc.wantWarn)
			}
			want := tc.want
			if want == nil {
				want = tc.existing
			}
			if got := state.get(t, "memoflow", "memoflow-transport"); !equalData(got, want) {
				t.Errorf("memoflow-transport has keys %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
				for k := range want {
					if !bytes.Equal(got[k], want[k]) {
						t.Errorf("memoflow-transport key %s is not what it should be", k)
					}
				}
			}
			for _, s := range []string{"memoflow-clickhouse", "memoflow-api-tokens", "memoflow-blob", "memoflow-pseudonym"} {
				if state.get(t, "memoflow", s) == nil {
					t.Errorf("%s was not applied", s)
				}
			}
			if tc.production && state.get(t, "memoflow", "memoflow-kafka-ca") == nil {
				t.Error("--production: memoflow-kafka-ca was not applied")
			}
			if len(tc.env) > 0 && strings.Contains(tc.env[len(tc.env)-1], "OCES_CA_FILE=") && !tc.noOpenSSL &&
				!strings.Contains(stdout.String(), "OCES_CA_FILE: 2 CA certificates:") {
				t.Errorf("the accepted bundle is not listed:\n%s", stdout.String())
			}
		})
	}
}

func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
