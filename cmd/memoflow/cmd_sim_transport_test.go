package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"
)

// TestSimRecipientTransports: `memoflow sim recipient --protocol
// sftp|smtp` prints the registry entry and memoflow's flags, keeps its
// keys in --keys-dir, and reports missing messages against --expect-file
// (exit status 1, or in --json).
func TestSimRecipientTransports(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	expect := filepath.Join(dir, "expect.txt")
	os.WriteFile(expect, []byte("00000000-0000-4000-8000-000000000001\n"), 0o644)
	for proto, want := range map[string][]string{
		"sftp": {`"sshHostKey":"ssh-ed25519 `, "--sftp-key-file " + filepath.Join(keys, "memoflow_ssh_key")},
		"smtp": {`"certificate":"-----BEGIN CERTIFICATE-----`, "--smtp-tls-ca-file " + filepath.Join(keys, "smtp_tls_ca.pem")},
	} {
		args := []string{"sim", "recipient", "--protocol", proto, "--addr", "127.0.0.1:0", "--keys-dir", keys,
			"--sftp-root", filepath.Join(dir, "root"), "--duration", "200ms", "--expect-file", expect}
		if code, _, stderr := runCLI(t, args...); code != 1 {
			t.Fatalf("%s: exit %d (want 1: one expected message missing) %s", proto, code, stderr)
		}
		// --json reports instead (exit 0, as for REST).
		code, stdout, stderr := runCLI(t, append(args, "--json")...)
		if code != 0 {
			t.Fatalf("%s --json: exit %d %s", proto, code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Fatalf("%s: output lacks %q:\n%s", proto, w, stdout)
			}
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		var st transportStats
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &st); err != nil || st.Expected != 1 || len(st.Missing) != 1 || st.Protocol != proto {
			t.Fatalf("%s: stats %+v %v", proto, st, err)
		}
	}
	if code, _, _ := runCLI(t, "sim", "recipient", "--protocol", "ftp"); code == 0 {
		t.Fatal("--protocol ftp accepted")
	}
}
