package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Dir is a Store in a local directory, for development and single-node
// setups. Layout: <root>/<fan>/<name>, where fan is the first two hex
// digits of the SHA-256 of the key (256 subdirectories, so a directory
// holds ~4,000 files at a million blobs whatever the keys look like: keys
// such as "memo/…" share their literal prefix) and name is the key with
// "/" written as "+" (which keys cannot contain), so the tree stays two
// levels deep.
//
// Needs a local POSIX file system with hard links (see Put). Keys that
// differ only in case collide on case-insensitive file systems.
type Dir struct {
	root string
}

const (
	tmpPrefix = ".tmp-"
	dirPerm   = 0o750 // blobs are letters to citizens: no world access
	filePerm  = 0o640
)

// NewDir returns a Dir store rooted at dir, creating it if needed.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("blob: NewDir: empty directory")
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Dir{root: dir}, nil
}

func (d *Dir) path(key string) (dir, file string) {
	sum := sha256.Sum256([]byte(key))
	dir = filepath.Join(d.root, hex.EncodeToString(sum[:1]))
	return dir, filepath.Join(dir, strings.ReplaceAll(key, "/", "+"))
}

// Put writes r to a temporary file in the blob's own directory, fsyncs it,
// and then hard-links it to its final name. link(2), unlike rename(2), fails
// when the name exists: that makes "first writer wins, later writers
// compare" atomic, where rename would let a second writer with different
// bytes silently replace the first. Readers see no file or a complete,
// synced one.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (Ref, error) {
	if err := CheckKey(key); err != nil {
		return Ref{}, err
	}
	dir, final := d.path(key)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return Ref{}, fmt.Errorf("blob: %w", err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return Ref{}, fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful link, only the name goes
	hr := newHashingReader(ctxReader{ctx, r})
	_, err = io.Copy(tmp, hr)
	if err == nil {
		err = tmp.Chmod(filePerm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Ref{}, fmt.Errorf("blob: writing %q: %w", key, err)
	}
	ref := hr.ref(key)
	switch err := os.Link(tmp.Name(), final); {
	case err == nil:
		// The new name must survive a crash too.
		return ref, syncDir(dir)
	case errors.Is(err, fs.ErrExist):
		return ref, d.same(ref, final)
	default:
		return Ref{}, fmt.Errorf("blob: storing %q (the blob directory must support hard links): %w", key, err)
	}
}

// same checks that the blob already at path holds ref's bytes.
func (d *Dir) same(ref Ref, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	hr := newHashingReader(f)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if got := hr.ref(ref.Key); got != ref {
		return fmt.Errorf("%w: %q holds %d bytes with sha256 %s", ErrConflict, ref.Key, got.Size, got.SHA256)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: syncing %s: %w", dir, err)
	}
	return nil
}

// Get opens the blob; see Store.
func (d *Dir) Get(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, path := d.path(ref.Key)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref.Key)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if st, err := f.Stat(); err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %w", err)
	} else if st.Size() != ref.Size {
		f.Close()
		return nil, fmt.Errorf("%w: %q: %d bytes stored, want %d", ErrCorrupt, ref.Key, st.Size(), ref.Size)
	}
	return newVerifier(f, ref), nil
}

// Delete removes the blob; see Store.
func (d *Dir) Delete(ctx context.Context, ref Ref) error {
	if err := CheckKey(ref.Key); err != nil {
		return err
	}
	_, path := d.path(ref.Key)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// Walk lists the blobs; see Store. Each fan-out directory is read whole
// before fn runs for its files, so fn may delete them.
func (d *Dir) Walk(ctx context.Context, fn func(Info) error) error {
	return d.walk(ctx, func(dir string, e fs.DirEntry) error {
		if strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			return nil
		}
		key := strings.ReplaceAll(e.Name(), "+", "/")
		if CheckKey(key) != nil {
			return nil // not ours
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		} else if err != nil {
			return fmt.Errorf("blob: %w", err)
		}
		return fn(Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
}

// removeTemp deletes temporary files a crashed Put left behind.
func (d *Dir) removeTemp(ctx context.Context, before time.Time) error {
	return d.walk(ctx, func(dir string, e fs.DirEntry) error {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			return nil
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("blob: %w", err)
			}
		}
		return nil
	})
}

func (d *Dir) walk(ctx context.Context, fn func(dir string, e fs.DirEntry) error) error {
	fans, err := os.ReadDir(d.root)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != 2 {
			continue
		}
		dir := filepath.Join(d.root, fan.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("blob: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(dir, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Check reports whether the directory is usable, for readiness probes: it
// writes and removes a small file.
func (d *Dir) Check(ctx context.Context) error {
	f, err := os.CreateTemp(d.root, tmpPrefix+"check-*")
	if err != nil {
		return fmt.Errorf("blob: directory %s is not writable: %w", d.root, err)
	}
	name := f.Name()
	_, err = io.Copy(f, bytes.NewReader([]byte("ok")))
	f.Close()
	os.Remove(name)
	return err
}
