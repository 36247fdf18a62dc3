package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness is a Store under test plus the two things a test cannot do
// through the Store interface: damage a stored blob and age it.
type harness struct {
	Store
	// corrupt flips one byte of the stored blob, keeping its size.
	corrupt func(t *testing.T, key string)
	// backdate makes the stored blob look written by ago earlier.
	backdate func(t *testing.T, key string, ago time.Duration)
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func refOf(key string, b []byte) Ref {
	sum := sha256.Sum256(b)
	return Ref{Key: key, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

func get(ctx context.Context, s Store, ref Ref) ([]byte, error) {
	rc, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// testStore is the conformance suite every Store passes.
func testStore(t *testing.T, newHarness func(t *testing.T) harness) {
	ctx := context.Background()

	t.Run("round trip", func(t *testing.T) {
		s := newHarness(t)
		for i, n := range []int{0, 1, 4096, 600 << 10, 20 << 20} { // 20 MB: several S3 parts
			key := fmt.Sprintf("memo/rt-%d", i)
			data := randomBytes(uint64(i), n)
			ref, err := s.Put(ctx, key, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if ref != refOf(key, data) {
				t.Fatalf("%d bytes: Ref %+v, want %+v", n, ref, refOf(key, data))
			}
			got, err := get(ctx, s, ref)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: Get = %d bytes, %v", n, len(got), err)
			}
		}
	})

	t.Run("idempotent put and conflict", func(t *testing.T) {
		s := newHarness(t)
		data := randomBytes(1, 10_000)
		ref1, err := s.Put(ctx, "memo/x", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		// A plain io.Reader, not a bytes.Reader: no size known up front.
		ref2, err := s.Put(ctx, "memo/x", io.MultiReader(bytes.NewReader(data[:10]), bytes.NewReader(data[10:])))
		if err != nil || ref2 != ref1 {
			t.Fatalf("second Put: %+v, %v; want %+v", ref2, err, ref1)
		}
		other := bytes.Clone(data)
		other[5000] ^= 1 // same size, different bytes
		for _, d := range [][]byte{other, data[:9999], append(bytes.Clone(data), 0)} {
			if _, err := s.Put(ctx, "memo/x", bytes.NewReader(d)); !errors.Is(err, ErrConflict) {
				t.Fatalf("conflicting Put of %d bytes: %v, want ErrConflict", len(d), err)
			}
		}
		if got, err := get(ctx, s, ref1); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after conflicts: %v", err)
		}
	})

	t.Run("idempotent put and conflict, multipart size", func(t *testing.T) {
		s := newHarness(t)
		data := randomBytes(3, 17<<20)
		ref, err := s.Put(ctx, "memo/big", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if again, err := s.Put(ctx, "memo/big", bytes.NewReader(data)); err != nil || again != ref {
			t.Fatalf("second Put: %+v, %v", again, err)
		}
		data[len(data)-1] ^= 1
		if _, err := s.Put(ctx, "memo/big", bytes.NewReader(data)); !errors.Is(err, ErrConflict) {
			t.Fatalf("conflicting Put: %v, want ErrConflict", err)
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		s := newHarness(t)
		data := randomBytes(2, 100_000)
		ref, err := s.Put(ctx, "memo/c", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		// A Ref that does not match what is stored.
		bad := ref
		bad.SHA256 = refOf("", []byte("other")).SHA256
		if _, err := get(ctx, s, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("wrong hash: %v, want ErrCorrupt", err)
		}
		bad = ref
		bad.Size++
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("wrong size: %v, want ErrCorrupt from Get itself", err)
		}
		// Damage on the storage side.
		s.corrupt(t, "memo/c")
		got, err := get(ctx, s, ref)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte: %v, want ErrCorrupt", err)
		}
		if len(got) > len(data) {
			t.Fatal("read past the size")
		}
	})

	t.Run("not found and delete", func(t *testing.T) {
		s := newHarness(t)
		ref := refOf("memo/none", nil)
		if _, err := s.Get(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing key: %v", err)
		}
		ref, err := s.Put(ctx, "memo/d", strings.NewReader("d"))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second delete is of a missing blob
			if err := s.Delete(ctx, Ref{Key: "memo/d"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Get(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		// The key is free again, for any content.
		if _, err := s.Put(ctx, "memo/d", strings.NewReader("new")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		s := newHarness(t)
		for _, key := range []string{"", "../x", "/abs", "a//b", "a/", ".hidden", "a/.tmp-x", "a\\b", "a b", "ä"} {
			if _, err := s.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Put(%q): %v", key, err)
			}
			if _, err := s.Get(ctx, Ref{Key: key, SHA256: refOf("", nil).SHA256}); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q): %v", key, err)
			}
			if err := s.Delete(ctx, Ref{Key: key}); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Delete(%q): %v", key, err)
			}
		}
	})

	t.Run("walk and retention", func(t *testing.T) {
		s := newHarness(t)
		for i, key := range []string{"memo/old-1", "memo/old-2", "memo/new", "x"} {
			if _, err := s.Put(ctx, key, bytes.NewReader(randomBytes(uint64(i), 100+i))); err != nil {
				t.Fatal(err)
			}
		}
		s.backdate(t, "memo/old-1", 48*time.Hour)
		s.backdate(t, "memo/old-2", 30*time.Hour)
		var seen []string
		if err := s.Walk(ctx, func(i Info) error {
			seen = append(seen, fmt.Sprintf("%s:%d", i.Key, i.Size))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sort.Strings(seen)
		if got := strings.Join(seen, ","); got != "memo/new:102,memo/old-1:100,memo/old-2:101,x:103" {
			t.Fatalf("Walk saw %s", got)
		}
		stop := errors.New("stop")
		if err := s.Walk(ctx, func(Info) error { return stop }); err != stop {
			t.Fatalf("Walk returned %v, want fn's error", err)
		}
		n, err := DeleteOlderThan(ctx, s, 24*time.Hour)
		if err != nil || n != 2 {
			t.Fatalf("DeleteOlderThan = %d, %v; want 2", n, err)
		}
		seen = nil
		s.Walk(ctx, func(i Info) error { seen = append(seen, i.Key); return nil })
		sort.Strings(seen)
		if strings.Join(seen, ",") != "memo/new,x" {
			t.Fatalf("after retention: %q", seen)
		}
	})

	t.Run("concurrent puts of one key", func(t *testing.T) {
		s := newHarness(t)
		const n = 12
		data := randomBytes(7, 700<<10)
		var wg sync.WaitGroup
		refs, errs := make([]Ref, n), make([]error, n)
		for i := range n {
			wg.Go(func() { refs[i], errs[i] = s.Put(ctx, "memo/same", bytes.NewReader(data)) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || refs[i] != refOf("memo/same", data) {
				t.Fatalf("put %d: %+v, %v", i, refs[i], errs[i])
			}
		}
		// Different contents: exactly one wins, and it is what is stored.
		var won []int
		for i := range n {
			wg.Go(func() {
				refs[i], errs[i] = s.Put(ctx, "memo/race", bytes.NewReader(randomBytes(uint64(100+i), 50_000)))
			})
		}
		wg.Wait()
		for i := range n {
			switch {
			case errs[i] == nil:
				won = append(won, i)
			case !errors.Is(errs[i], ErrConflict):
				t.Fatalf("put %d: %v", i, errs[i])
			}
		}
		if len(won) != 1 {
			t.Fatalf("%d winners", len(won))
		}
		if got, err := get(ctx, s, refs[won[0]]); err != nil || !bytes.Equal(got, randomBytes(uint64(100+won[0]), 50_000)) {
			t.Fatalf("stored blob is not the winner's: %v", err)
		}
	})

	t.Run("cancelled put", func(t *testing.T) {
		s := newHarness(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "memo/cancel", io.LimitReader(zeros{}, 20<<20)); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		if _, err := s.Get(ctx, refOf("memo/cancel", nil)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a cancelled Put left a blob: %v", err)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func newDirHarness(t *testing.T) harness {
	d, err := NewDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return harness{
		Store: d,
		corrupt: func(t *testing.T, key string) {
			_, path := d.path(key)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, 1234)
			b[0] ^= 0x20
			if _, err := f.WriteAt(b, 1234); err != nil {
				t.Fatal(err)
			}
		},
		backdate: func(t *testing.T, key string, ago time.Duration) {
			_, path := d.path(key)
			old := time.Now().Add(-ago)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestDir(t *testing.T) { testStore(t, newDirHarness) }

// Dir specifics: the layout, permissions, and no temporary files left
// behind by successful, conflicting or failed puts.
func TestDirLayout(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "memo/a.xml", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	d.Put(ctx, "memo/a.xml", strings.NewReader("conflict"))
	d.Put(ctx, "memo/b.xml", iotestErrReader{})
	_, path := d.path("memo/a.xml")
	rel, _ := filepath.Rel(root, path)
	if len(rel) != 2+1+len("memo+a.xml") || !strings.HasSuffix(rel, "/memo+a.xml") {
		t.Errorf("blob at %s", rel)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != filePerm {
		t.Errorf("blob mode %v, %v", st.Mode(), err)
	}
	temps, _ := filepath.Glob(filepath.Join(root, "*", tmpPrefix+"*"))
	if len(temps) != 0 {
		t.Errorf("temporary files left: %q", temps)
	}

	// A crash leftover is removed by retention once old enough.
	leftover := filepath.Join(filepath.Dir(path), tmpPrefix+"crashed")
	os.WriteFile(leftover, []byte("half"), filePerm)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(leftover, old, old)
	if _, err := DeleteOlderThan(ctx, d, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temp file still there: %v", err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

// A 100 MB blob goes in and out with bounded memory: Put and Get stream.
func TestDirLargeBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const size = 100 << 20
	const limit = 8 << 20
	src := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{9}), size) }
	want := sha256.New()
	io.Copy(want, src())

	var ref Ref
	putAlloc := allocated(func() { ref, err = d.Put(ctx, "memo/large", src()) })
	alloc := putAlloc
	if err != nil || ref.Size != size || ref.SHA256 != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("Put: %+v, %v", ref, err)
	}
	if alloc > limit {
		t.Errorf("Put allocated %d MB", alloc>>20)
	}
	var n int64
	alloc = allocated(func() {
		var rc io.ReadCloser
		if rc, err = d.Get(ctx, ref); err == nil {
			n, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
	})
	if err != nil || n != size {
		t.Fatalf("Get: %d bytes, %v", n, err)
	}
	if alloc > limit {
		t.Errorf("Get allocated %d MB", alloc>>20)
	}
	t.Logf("100 MB blob: Put allocated %d KB, Get %d KB in all (limit %d MB)", putAlloc>>10, alloc>>10, limit>>20)
}

// allocated returns the bytes f allocated on the heap in all: an upper
// bound of what it held at once.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestCheckKey(t *testing.T) {
	for _, key := range []string{"a", "memo/0f8fad5b-d9cb-469f-a165-70867728950e", "A-Z_0.9", "a/b/c.xml", "a.b", strings.Repeat("k", MaxKeyBytes)} {
		if err := CheckKey(key); err != nil {
			t.Errorf("CheckKey(%q) = %v", key, err)
		}
	}
	for _, key := range []string{"", "/a", "a/", "a//b", ".", "..", "../a", "a/../b", "a/./b", ".a", "a/.b", `a\b`, "a b", "a+b", "a%2Fb", "a\x00", "æ", "C:x", strings.Repeat("k", MaxKeyBytes+1)} {
		if err := CheckKey(key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestRefValidate(t *testing.T) {
	good := refOf("k", []byte("x"))
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Ref{{Key: "k", Size: 1}, {Key: "k", Size: -1, SHA256: good.SHA256}, {Key: "k", SHA256: strings.ToUpper(good.SHA256)}, {Key: "", SHA256: good.SHA256}} {
		if r.Validate() == nil {
			t.Errorf("%+v is valid", r)
		}
	}
}

func TestDeleteOlderThanAge(t *testing.T) {
	d, _ := NewDir(t.TempDir())
	if _, err := DeleteOlderThan(context.Background(), d, 0); err == nil {
		t.Fatal("age 0 accepted")
	}
}
