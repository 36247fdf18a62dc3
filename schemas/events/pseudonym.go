package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"github.com/spf13/pflag"
)

// pseudonymLen is the length of a pseudonym: hex of a full HMAC-SHA256.
const pseudonymLen = 2 * sha256.Size

// pseudonymDomain separates these MACs from any other use of the same key.
const pseudonymDomain = "memoflow/recipient/v1:"

// MinKeyLen is the shortest accepted pseudonym secret, in bytes. The input
// space (10^10 CPR numbers) is small enough to try exhaustively, so the
// secret is all that protects it: it must be long and random.
const MinKeyLen = 32

// ErrInvalidKeys is wrapped by every key or key-config error.
var ErrInvalidKeys = errors.New("invalid pseudonym keys")

// Key is one pseudonym secret and the id stored with every row it produced.
type Key struct {
	ID     string
	Secret []byte
}

// Pseudonymizer turns recipient identifiers into what the event log may
// hold: a well-formed CVR stays in clear; a CPR (or anything that is not a
// CVR, since a mislabelled CPR is still a CPR) becomes
// hex(HMAC-SHA256(key, identifier)) with the key's id beside it.
//
// Keys rotate: the first key writes, all keys are used to search (Pseudonyms),
// so rows written under an older key stay findable. See DESIGN.md in
// stages/eventlog for the procedure. A Pseudonymizer is safe for concurrent
// use.
type Pseudonymizer struct {
	keys  []Key
	pools []sync.Pool // one pool of keyed HMAC states per key
}

// NewPseudonymizer returns a Pseudonymizer that writes with keys[0] and
// searches with all of them.
func NewPseudonymizer(keys ...Key) (*Pseudonymizer, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalidKeys)
	}
	seen := map[string]bool{}
	p := &Pseudonymizer{keys: make([]Key, len(keys)), pools: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("%w: key id %q must be 1-16 of [A-Za-z0-9_-]", ErrInvalidKeys, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%w: key id %q appears twice", ErrInvalidKeys, k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < MinKeyLen {
			return nil, fmt.Errorf("%w: key %q has %d bytes, want at least %d random bytes", ErrInvalidKeys, k.ID, len(k.Secret), MinKeyLen)
		}
		secret := append([]byte(nil), k.Secret...)
		p.keys[i] = Key{ID: k.ID, Secret: secret}
		p.pools[i].New = func() any { return hmac.New(sha256.New, secret) }
	}
	return p, nil
}

// CurrentKeyID is the id of the key new pseudonyms are made with.
func (p *Pseudonymizer) CurrentKeyID() string { return p.keys[0].ID }

// Recipient returns the recipient as the event log may hold it. idType is
// the sender's declared type; id is used as given except that spaces and
// dashes are dropped ("010101-1234" and "0101011234" are one person).
func (p *Pseudonymizer) Recipient(idType IDType, id string) Recipient {
	id = normalizeID(id)
	switch {
	case idType == NoRecipient && id == "":
		return Recipient{}
	case idType == CVR && isCVR(id):
		return Recipient{idType: CVR, id: id}
	}
	if idType == NoRecipient {
		idType = OtherID
	}
	return Recipient{idType: idType, id: p.mac(0, id), keyID: p.keys[0].ID}
}

// Pseudonyms returns the recipient under every key, current first: the
// values to look for when the log is searched by a person's identifier.
func (p *Pseudonymizer) Pseudonyms(idType IDType, id string) []Recipient {
	r := p.Recipient(idType, id)
	if !r.Pseudonymised() {
		return []Recipient{r}
	}
	out := []Recipient{r}
	norm := normalizeID(id)
	for i := 1; i < len(p.keys); i++ {
		out = append(out, Recipient{idType: r.idType, id: p.mac(i, norm), keyID: p.keys[i].ID})
	}
	return out
}

func (p *Pseudonymizer) mac(key int, id string) string {
	h := p.pools[key].Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(pseudonymDomain))
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	s := hex.EncodeToString(h.Sum(sum[:0]))
	p.pools[key].Put(h)
	return s
}

func normalizeID(id string) string {
	if !strings.ContainsAny(id, " -") {
		return id
	}
	return strings.NewReplacer(" ", "", "-", "").Replace(id)
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// PseudonymConfig says where the pseudonym keys come from: a secret file
// (production) or inline (development and tests). Both hold entries
// "<key-id>:<base64 secret>", the current key first; the file has one entry
// a line ('#' starts a comment), the inline form separates them with commas.
type PseudonymConfig struct {
	KeyFile string `yaml:"key_file"`
	Keys    string `yaml:"-"` // never from a config file: secrets do not belong there
}

// RegisterFlags binds pseudonym-key-file and pseudonym-keys.
func (c *PseudonymConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.KeyFile, "pseudonym-key-file", "", "file of pseudonym keys, one \"<id>:<base64 secret>\" a line, current key first")
	fs.StringVar(&c.Keys, "pseudonym-keys", "", "pseudonym keys inline, \"<id>:<base64>[,...]\" (development only; prefer --pseudonym-key-file)")
}

// Validate checks that exactly one key source is set.
func (c PseudonymConfig) Validate() error {
	switch {
	case c.KeyFile == "" && c.Keys == "":
		return fmt.Errorf("%w: set --pseudonym-key-file (generate a key with: echo \"k1:$(head -c 32 /dev/urandom | base64)\")", ErrInvalidKeys)
	case c.KeyFile != "" && c.Keys != "":
		return fmt.Errorf("%w: set --pseudonym-key-file or --pseudonym-keys, not both", ErrInvalidKeys)
	}
	return nil
}

// Load reads the keys and returns the Pseudonymizer.
func (c PseudonymConfig) Load() (*Pseudonymizer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var entries []string
	if c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --pseudonym-key-file: %v", ErrInvalidKeys, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				entries = append(entries, line)
			}
		}
	} else {
		for _, e := range strings.Split(c.Keys, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}
	keys := make([]Key, 0, len(entries))
	for n, e := range entries {
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("%w: entry %d is not <id>:<base64 secret>", ErrInvalidKeys, n+1)
		}
		secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: secret is not base64: %v", ErrInvalidKeys, id, err)
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Secret: secret})
	}
	return NewPseudonymizer(keys...)
}
