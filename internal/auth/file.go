package auth

import (
	"fmt"
	"os"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// TokenEntry is one line of a token file: the token's hash, never the token.
type TokenEntry struct {
	TokenSHA256 string `yaml:"token_sha256"`
	Principal   `yaml:",inline"`
}

var (
	reHash = regexp.MustCompile(`^[0-9a-f]{64}$`)
	reCVR  = regexp.MustCompile(`^[0-9]{8}$`)
)

// Validate checks one entry.
func (e TokenEntry) Validate() error {
	switch {
	case !reHash.MatchString(e.TokenSHA256):
		return fmt.Errorf("token_sha256 %q is not 64 lower-case hex digits (memoflow admin token hash prints it)", e.TokenSHA256)
	case e.ID == "":
		return fmt.Errorf("id is empty")
	case !reCVR.MatchString(e.Org):
		return fmt.Errorf("org %q is not a CVR number (8 digits)", e.Org)
	case len(e.Roles) == 0:
		return fmt.Errorf("roles is empty")
	}
	for _, r := range e.Roles {
		if !slices.Contains(AllRoles, r) {
			return fmt.Errorf("role %q is unknown; known roles: %v", r, AllRoles)
		}
	}
	return nil
}

// LoadFile reads a YAML list of TokenEntry into s. Every entry is checked
// before any is stored.
func LoadFile(path string, s *MemStore) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("token file: %w", err)
	}
	var entries []TokenEntry
	if err := yaml.Unmarshal(b, &entries); err != nil {
		return 0, fmt.Errorf("token file %s: %v", path, err)
	}
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return 0, fmt.Errorf("token file %s, entry %d: %w", path, i+1, err)
		}
	}
	for _, e := range entries {
		p := e.Principal
		s.Put(e.TokenSHA256, &p)
	}
	return len(entries), nil
}

// WriteFile writes entries as a token file readable only by its owner.
func WriteFile(path string, entries []TokenEntry) error {
	b, err := yaml.Marshal(entries)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
