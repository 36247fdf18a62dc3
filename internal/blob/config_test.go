package blob

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if c != DefaultConfig() || c.Dir != "./var/blobs" || c.ThresholdBytes != 524288 || c.Store != "dir" {
		t.Fatalf("defaults %+v", c)
	}
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("k"), 0o600)
	err := fs.Parse([]string{"--blob-store=s3", "--blob-s3-endpoint=minio:9000", "--blob-s3-bucket=memoflow-blobs",
		"--blob-s3-access-key=ak", "--blob-s3-secret-key-file=" + secret, "--blob-s3-use-tls", "--blob-s3-region=eu-north-1",
		"--blob-threshold-bytes=100000"})
	if err != nil {
		t.Fatal(err)
	}
	want := S3Config{Endpoint: "minio:9000", Bucket: "memoflow-blobs", AccessKey: "ak", SecretKeyFile: secret, UseTLS: true, Region: "eu-north-1"}
	if c.S3 != want || c.ThresholdBytes != 100000 {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*S3); !ok {
		t.Fatalf("Open gave %T", s)
	}
}

// Each invalid config names the flag to fix.
func TestConfigValidate(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("k"), 0o600)
	s3 := func(edit func(*S3Config)) Config {
		c := DefaultConfig()
		c.Store = "s3"
		c.S3 = S3Config{Endpoint: "minio:9000", Bucket: "blobs", AccessKey: "ak", SecretKeyFile: secret}
		edit(&c.S3)
		return c
	}
	tests := []struct {
		c    Config
		flag string
	}{
		{Config{Store: "nfs", Dir: "x", ThresholdBytes: 1}, "blob-store"},
		{Config{Store: "dir", ThresholdBytes: 1}, "blob-dir"},
		{Config{Store: "dir", Dir: "x", ThresholdBytes: 0}, "blob-threshold-bytes"},
		{Config{Store: "dir", Dir: "x", ThresholdBytes: 2 << 20}, "blob-threshold-bytes"},
		{Config{Store: "dir", Dir: "x", ThresholdBytes: 1, Retention: 24 * time.Hour}, "blob-retention"},
		{Config{Store: "dir", Dir: "x", ThresholdBytes: 1, SweepInterval: time.Second}, "blob-sweep-interval"},
		{s3(func(c *S3Config) { c.Endpoint = "" }), "blob-s3-endpoint"},
		{s3(func(c *S3Config) { c.Endpoint = "https://minio:9000" }), "blob-s3-endpoint"},
		{s3(func(c *S3Config) { c.Endpoint = "minio:9000/path" }), "blob-s3-endpoint"},
		{s3(func(c *S3Config) { c.Bucket = "" }), "blob-s3-bucket"},
		{s3(func(c *S3Config) { c.Bucket = "Upper_Case" }), "blob-s3-bucket"},
		{s3(func(c *S3Config) { c.Bucket = "-dash" }), "blob-s3-bucket"},
		{s3(func(c *S3Config) { c.AccessKey = "" }), "blob-s3-access-key"},
		{s3(func(c *S3Config) { c.SecretKeyFile = "" }), "blob-s3-secret-key-file"},
		{s3(func(c *S3Config) { c.SecretKeyFile = "/nonexistent/secret" }), "blob-s3-secret-key-file"},
	}
	for _, tc := range tests {
		err := tc.c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "--"+tc.flag+" ") {
			t.Errorf("%+v: %v, want an error naming --%s", tc.c, err, tc.flag)
		}
		if s, err := Open(tc.c); err == nil || s != nil {
			t.Errorf("Open(%+v) = %v, %v", tc.c, s, err)
		}
	}
	// S3 fields do not matter for the dir store.
	c := DefaultConfig()
	c.S3.Endpoint = "https://ignored"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Dir = filepath.Join(t.TempDir(), "blobs")
	if s, err := Open(c); err != nil {
		t.Fatal(err)
	} else if _, ok := s.(*Dir); !ok {
		t.Fatalf("Open gave %T", s)
	}
}
