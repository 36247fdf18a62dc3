package blob

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// shiftClock is the fake S3 backend's clock: real time minus a shift the
// test sets, to write blobs "in the past".
type shiftClock struct{ shift atomic.Int64 }

func (c *shiftClock) Now() time.Time                  { return time.Now().Add(-time.Duration(c.shift.Load())) }
func (c *shiftClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

const testBucket = "memoflow-blobs"

// newS3Harness runs the S3 store against gofakes3, an in-process S3
// implementation (in-memory backend), over real HTTP with minio-go.
func newS3Harness(t *testing.T) harness {
	clock := &shiftClock{}
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(fake.Server())
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("test-secret\n"), 0o600)
	s, err := NewS3(S3Config{
		Endpoint:      strings.TrimPrefix(srv.URL, "http://"),
		Bucket:        testBucket,
		AccessKey:     "test-access",
		SecretKeyFile: secret,
		Region:        "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	// rewrite replaces the stored object behind the store's back.
	rewrite := func(t *testing.T, key string, edit func([]byte) []byte) {
		obj, err := backend.GetObject(testBucket, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(obj.Contents)
		obj.Contents.Close()
		b := edit(buf.Bytes())
		if _, err := backend.PutObject(testBucket, key, obj.Metadata, bytes.NewReader(b), int64(len(b)), nil); err != nil {
			t.Fatal(err)
		}
	}
	return harness{
		Store: s,
		corrupt: func(t *testing.T, key string) {
			rewrite(t, key, func(b []byte) []byte { b[1234] ^= 0x20; return b })
		},
		backdate: func(t *testing.T, key string, ago time.Duration) {
			clock.shift.Store(int64(ago))
			defer clock.shift.Store(0)
			rewrite(t, key, func(b []byte) []byte { return b })
		},
	}
}

func TestS3(t *testing.T) { testStore(t, newS3Harness) }

func TestS3Missing(t *testing.T) {
	h := newS3Harness(t)
	s := h.Store.(*S3)
	s.bucket = "no-such-bucket"
	if err := s.Check(t.Context()); err == nil {
		t.Fatal("Check of a missing bucket succeeded")
	}
}
