// Package sftp delivers MeMo messages to recipient systems over SFTP and
// picks up the business receipts they write back.
//
// A message becomes the file <folder>/<messageUUID>.xml. It is written
// under a hidden temporary name and renamed, so a reader polling the folder
// never sees half a file. memoflow authenticates with its SSH private key;
// the server's host key is pinned per system in the registry (there is no
// "accept any host key" mode). Errors are *transport.Error with a stable
// code and a transient/permanent outcome (see stages/transport).
package sftp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Proto names the protocol in errors.
const Proto = "SFTP"

// Target is one SFTP recipient system: what the registry must hold.
type Target struct {
	SystemID string // registry id; the connection pool is per system
	Addr     string // host:port
	User     string
	// HostKey is the server's public host key in authorized_keys form
	// ("ssh-ed25519 AAAA… [comment]"), as the system's operator reports
	// it (ssh-keyscan, or /etc/ssh/ssh_host_*_key.pub). Pinned: any other
	// key fails the attempt with CodeHostKeyMismatch. During a host key
	// change it may hold the old and the new key, one per line.
	HostKey string
	// Folder is where MeMo files are written ("/inbox"). It must exist.
	Folder string
	// ReceiptFolder is where the system writes business receipt files
	// (records.Receipt JSON, *.json). Empty: the system sends no receipt
	// files.
	ReceiptFolder string
}

// ConfigError is a bad Target or Config field: the field and the fix.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "sftp: " + e.Field + ": " + e.Msg }

// Validate checks the target and parses its host key.
func (t *Target) Validate() error {
	_, err := t.hostKey()
	return err
}

func (t *Target) hostKey() ([]ssh.PublicKey, error) {
	switch {
	case t.SystemID == "":
		return nil, &ConfigError{"system_id", "set the registry id of the recipient system"}
	case t.Addr == "" || !strings.Contains(t.Addr, ":"):
		return nil, &ConfigError{"addr", fmt.Sprintf("%q: give host:port (port 22 for a standard SFTP server)", t.Addr)}
	case t.User == "":
		return nil, &ConfigError{"user", "set the SFTP user name the system gave memoflow"}
	case !path.IsAbs(t.Folder) || path.Clean(t.Folder) != t.Folder:
		return nil, &ConfigError{"folder", fmt.Sprintf("%q: give a clean absolute folder such as /inbox", t.Folder)}
	case t.ReceiptFolder != "" && (!path.IsAbs(t.ReceiptFolder) || path.Clean(t.ReceiptFolder) != t.ReceiptFolder):
		return nil, &ConfigError{"receipt_folder", fmt.Sprintf("%q: give a clean absolute folder such as /receipts, or leave it empty", t.ReceiptFolder)}
	case t.ReceiptFolder != "" && t.ReceiptFolder == t.Folder:
		return nil, &ConfigError{"receipt_folder", "must differ from folder: receipts and messages would be mistaken for each other"}
	case t.HostKey == "":
		return nil, &ConfigError{"host_key", "pin the server's host key (authorized_keys form, e.g. from ssh-keyscan); memoflow never accepts an unknown host key"}
	}
	var keys []ssh.PublicKey
	for i, line := range strings.Split(strings.TrimSpace(t.HostKey), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || len(bytes.TrimSpace(rest)) != 0 {
			return nil, &ConfigError{"host_key", fmt.Sprintf("line %d is not a public key in authorized_keys form (%v)", i+1, err)}
		}
		if _, ok := k.(*ssh.Certificate); ok {
			return nil, &ConfigError{"host_key", "pin the host's plain public key, not an SSH certificate"}
		}
		keys = append(keys, k)
	}
	if len(keys) > 2 {
		return nil, &ConfigError{"host_key", fmt.Sprintf("%d keys: pin one, or two while the server changes its key", len(keys))}
	}
	return keys, nil
}

// fingerprint identifies the settings a pooled connection was made with,
// so a registry change (new host key, user, address) gets new connections.
func (t *Target) fingerprint() string {
	return t.Addr + "\x00" + t.User + "\x00" + strings.TrimSpace(t.HostKey)
}

// Config is memoflow's side of SFTP delivery.
type Config struct {
	// KeyFile is memoflow's SSH private key (OpenSSH or PEM; ed25519 or
	// RSA of at least 2048 bits), unencrypted: mount it from the secret
	// store readable by memoflow only. Or give Signer directly.
	KeyFile string
	Signer  ssh.Signer

	DialTimeout time.Duration // TCP connect + SSH handshake; default 10s
	OpTimeout   time.Duration // one delivery on an open connection; default 60s
	IdleTimeout time.Duration // a pooled connection unused this long is closed; default 2m
	// MaxConnsPerSystem bounds connections (and concurrent deliveries) per
	// system: SFTP servers limit sessions per user. Default 4.
	MaxConnsPerSystem int
	// KeepReceipts moves handled receipt files to <receipt folder>/done/
	// instead of deleting them.
	KeepReceipts bool
	// MaxReceiptBytes bounds a receipt file; bigger ones are invalid.
	// Default 1 MiB.
	MaxReceiptBytes int64
}

func (c *Config) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.MaxConnsPerSystem == 0 {
		c.MaxConnsPerSystem = 4
	}
	if c.MaxReceiptBytes == 0 {
		c.MaxReceiptBytes = 1 << 20
	}
}

// Validate checks the config (after defaults).
func (c *Config) Validate() error {
	switch {
	case c.Signer == nil && c.KeyFile == "":
		return &ConfigError{"key_file", "give memoflow's SSH private key file (--sftp-key-file)"}
	case c.DialTimeout < 0 || c.OpTimeout < 0 || c.IdleTimeout < 0:
		return &ConfigError{"timeouts", "timeouts must not be negative (0 means the default)"}
	case c.MaxConnsPerSystem < 0 || c.MaxConnsPerSystem > 64:
		return &ConfigError{"max_conns_per_system", fmt.Sprintf("%d: give 1..64 (0 means 4)", c.MaxConnsPerSystem)}
	case c.MaxReceiptBytes < 0:
		return &ConfigError{"max_receipt_bytes", "must not be negative (0 means 1 MiB)"}
	}
	return nil
}

// LoadSigner reads an SSH private key file and checks it is one memoflow
// accepts: ed25519, or RSA of at least 2048 bits.
func LoadSigner(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &ConfigError{"key_file", fmt.Sprintf("cannot read %s: %v", file, err)}
	}
	return ParseSigner(b)
}

// ParseSigner parses an SSH private key (see LoadSigner).
func ParseSigner(pemBytes []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, &ConfigError{"key_file", "the key is passphrase-protected; store it unencrypted in the secret store instead"}
		}
		return nil, &ConfigError{"key_file", fmt.Sprintf("not an SSH private key (%v)", err)}
	}
	switch s.PublicKey().Type() {
	case ssh.KeyAlgoED25519:
	case ssh.KeyAlgoRSA:
		if n := rsaBits(s.PublicKey()); n < 2048 {
			return nil, &ConfigError{"key_file", fmt.Sprintf("RSA key of %d bits: use at least 2048 bits, or ed25519", n)}
		}
	default:
		return nil, &ConfigError{"key_file", fmt.Sprintf("key type %s: use ed25519 or RSA", s.PublicKey().Type())}
	}
	return s, nil
}

func rsaBits(k ssh.PublicKey) int {
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return 0
	}
	type sizer interface{ Size() int }
	if s, ok := ck.CryptoPublicKey().(sizer); ok {
		return s.Size() * 8
	}
	return 0
}

// hostKeyAlgorithms makes the server present the pinned key's type: a
// server with both an ed25519 and an RSA host key would otherwise pick one
// by its own preference, and a correct pin of the other would look like a
// mismatch.
func hostKeyAlgorithms(keys []ssh.PublicKey) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		algs := []string{k.Type()}
		if k.Type() == ssh.KeyAlgoRSA {
			algs = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		}
		for _, a := range algs {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func pinnedKey(keys []ssh.PublicKey, got ssh.PublicKey) bool {
	for _, k := range keys {
		if sameKey(k, got) {
			return true
		}
	}
	return false
}
