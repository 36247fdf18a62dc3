// Package blob is memoflow's claim-check store. Kafka records stay small: a
// MeMo above a threshold (512 KB by default) is stored here and the record
// carries its Ref (key, size, SHA-256) instead of the bytes.
//
// Two stores implement Store: Dir, a local directory (development, single
// node), and S3, any S3-compatible service (MinIO in production). Both
// stream: Put hashes while it writes and Get verifies while it reads, so a
// blob is never held whole in memory (S3 buffers one multipart part).
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Store holds blobs by key. Implementations are safe for concurrent use.
type Store interface {
	// Put stores r's bytes under key and returns their Ref. It is
	// idempotent: putting the same bytes under the same key again returns
	// the same Ref; different bytes under an existing key fail with
	// ErrConflict and leave the stored blob alone. A reader never sees a
	// half-written blob.
	Put(ctx context.Context, key string, r io.Reader) (Ref, error)
	// Get returns the blob's bytes. The reader checks them against ref: a
	// size or SHA-256 mismatch is an error wrapping ErrCorrupt, returned
	// instead of io.EOF (or at once, when the stored size already differs),
	// so a caller that reads to EOF never acts on damaged bytes. A missing
	// blob is ErrNotFound.
	Get(ctx context.Context, ref Ref) (io.ReadCloser, error)
	// Delete removes the blob under ref.Key (only the key is used).
	// Deleting a missing blob is not an error, so retention can be rerun.
	Delete(ctx context.Context, ref Ref) error
	// Walk calls fn for every blob, in no particular order, until fn
	// returns an error, which Walk returns. fn may Delete the blob it is
	// given.
	Walk(ctx context.Context, fn func(Info) error) error
}

// Ref is what a Kafka record carries in place of a MeMo.
type Ref struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	// SHA256 is the lowercase hex SHA-256 of the bytes.
	SHA256 string `json:"sha256"`
}

// Validate reports whether ref can be passed to Get.
func (r Ref) Validate() error {
	if err := CheckKey(r.Key); err != nil {
		return err
	}
	if r.Size < 0 {
		return fmt.Errorf("blob: %q: negative size %d", r.Key, r.Size)
	}
	if len(r.SHA256) != sha256.Size*2 || strings.Trim(r.SHA256, "0123456789abcdef") != "" {
		return fmt.Errorf("blob: %q: sha256 %q is not 64 lowercase hex digits", r.Key, r.SHA256)
	}
	return nil
}

// Info describes a stored blob, for retention.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

var (
	// ErrNotFound: no blob under the key.
	ErrNotFound = errors.New("blob: not found")
	// ErrConflict: the key holds different bytes.
	ErrConflict = errors.New("blob: key exists with different content")
	// ErrCorrupt: the stored bytes do not match the Ref.
	ErrCorrupt = errors.New("blob: content does not match its reference")
	// ErrInvalidKey: the key is not one CheckKey accepts.
	ErrInvalidKey = errors.New("blob: invalid key")
)

// MaxKeyBytes bounds a key. It keeps a Dir file name under the usual 255
// byte limit and an S3 key well under 1024.
const MaxKeyBytes = 200

// CheckKey reports whether key is usable: 1 to MaxKeyBytes bytes of
// A-Z a-z 0-9 . _ - and /, where / separates non-empty segments that do not
// start with a dot (so no "." or "..", no hidden files, no collision with a
// Dir store's temporary files) and no leading or trailing /.
//
// Keys are chosen by memoflow (e.g. "memo/<messageUUID>"), never by
// senders, so the rule is a narrow allow-list rather than an escaping
// scheme: a key that needs escaping is a bug upstream.
func CheckKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	if key == "" {
		return bad("empty")
	}
	if len(key) > MaxKeyBytes {
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyBytes))
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == 0 || key[i-1] == '/' {
				return bad("a segment starts with a dot")
			}
		case c == '/':
			if i == 0 || i == len(key)-1 || key[i-1] == '/' {
				return bad("empty segment")
			}
		default:
			return bad(fmt.Sprintf("character %q is not allowed", c))
		}
	}
	return nil
}

// DeleteOlderThan deletes every blob last modified more than age ago and
// returns how many it deleted. Run it with an age above the retention of
// the Kafka topics whose records refer to blobs, or a consumer replaying
// old records finds them gone. A store that leaves temporary files behind
// after a crash (Dir) has those removed too.
func DeleteOlderThan(ctx context.Context, s Store, age time.Duration) (int, error) {
	if age <= 0 {
		return 0, fmt.Errorf("blob: DeleteOlderThan: age must be positive, got %v", age)
	}
	cutoff := time.Now().Add(-age)
	if t, ok := s.(interface {
		removeTemp(ctx context.Context, before time.Time) error
	}); ok {
		if err := t.removeTemp(ctx, cutoff); err != nil {
			return 0, err
		}
	}
	n := 0
	err := s.Walk(ctx, func(i Info) error {
		if !i.ModTime.Before(cutoff) {
			return nil
		}
		if err := s.Delete(ctx, Ref{Key: i.Key}); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// hashingReader hashes and counts what passes through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashingReader(r io.Reader) *hashingReader {
	return &hashingReader{r: r, h: sha256.New()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashingReader) ref(key string) Ref {
	return Ref{Key: key, Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil))}
}

// verifier is what Get returns: it passes the blob through and, at EOF,
// compares size and hash with the Ref.
type verifier struct {
	rc   io.ReadCloser
	want Ref
	hr   *hashingReader
	err  error
}

func newVerifier(rc io.ReadCloser, want Ref) *verifier {
	return &verifier{rc: rc, want: want, hr: newHashingReader(rc)}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.hr.Read(p)
	switch {
	case v.hr.n > v.want.Size:
		err = v.corrupt(fmt.Sprintf("more than %d bytes", v.want.Size))
	case err == io.EOF:
		if got := v.hr.ref(v.want.Key); got.Size != v.want.Size {
			err = v.corrupt(fmt.Sprintf("%d bytes, want %d", got.Size, v.want.Size))
		} else if got.SHA256 != v.want.SHA256 {
			err = v.corrupt("sha256 " + got.SHA256 + ", want " + v.want.SHA256)
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifier) corrupt(msg string) error {
	return fmt.Errorf("%w: %q: %s", ErrCorrupt, v.want.Key, msg)
}

func (v *verifier) Close() error { return v.rc.Close() }

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
