package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says how to reach an S3-compatible store.
type S3Config struct {
	// Endpoint is host:port, without a scheme (UseTLS chooses it).
	Endpoint string `yaml:"endpoint"`
	Bucket   string `yaml:"bucket"`
	// AccessKey is the access key ID; the secret is read from
	// SecretKeyFile so it stays out of flags, config files and the process
	// list.
	AccessKey     string `yaml:"access_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	UseTLS        bool   `yaml:"use_tls"`
	// Region is optional for MinIO; AWS needs it.
	Region string `yaml:"region"`
}

// Validate reports the first unusable field, naming its flag and the fix.
func (c S3Config) Validate() error {
	if c.Endpoint == "" {
		return invalid("blob-s3-endpoint", "must be set to host:port of the S3 service (e.g. minio:9000)")
	}
	if strings.Contains(c.Endpoint, "://") {
		return invalid("blob-s3-endpoint", "must be host:port without a scheme, got %q (use --blob-s3-use-tls for https)", c.Endpoint)
	}
	if strings.ContainsAny(c.Endpoint, "/?#") {
		return invalid("blob-s3-endpoint", "must be host:port without a path, got %q", c.Endpoint)
	}
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil && strings.Contains(c.Endpoint, ":") {
		return invalid("blob-s3-endpoint", "must be host or host:port, got %q", c.Endpoint)
	}
	if err := checkBucket(c.Bucket); err != nil {
		return invalid("blob-s3-bucket", "%v", err)
	}
	if c.AccessKey == "" {
		return invalid("blob-s3-access-key", "must be set to the access key ID")
	}
	if c.SecretKeyFile == "" {
		return invalid("blob-s3-secret-key-file", "must name a file holding the secret key")
	}
	if _, err := os.Stat(c.SecretKeyFile); err != nil {
		return invalid("blob-s3-secret-key-file", "cannot be read: %v", err)
	}
	return nil
}

// checkBucket applies the S3 bucket naming rules.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("must be 3-63 characters, got %q", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("may hold only lowercase letters, digits, '-' and '.', got %q", b)
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) || strings.Contains(b, "..") {
		return fmt.Errorf("must start and end with a letter or digit and have no '..', got %q", b)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// S3 is a Store in an S3 bucket (MinIO in production). The object key is
// the blob key.
//
// S3 needs a length per request, so Put sends a blob of unknown length in
// parts of s3PartSize bytes and holds one part at a time: never the whole
// blob, unless the blob is smaller than a part.
type S3 struct {
	client *minio.Client
	core   *minio.Core // the multipart and checksummed-PUT calls
	bucket string
	parts  sync.Pool
}

// s3PartSize is above S3's 5 MiB minimum part size. Blobs are MeMos
// (0.5-99.5 MB), so most go up in one PUT, which is also the only request
// every S3 implementation checks If-None-Match on.
const s3PartSize = 8 << 20

const contentType = "application/octet-stream"

// NewS3 returns an S3 store. It does not contact the service; Check does.
func NewS3(cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, err := os.ReadFile(cfg.SecretKeyFile)
	if err != nil {
		return nil, invalid("blob-s3-secret-key-file", "%v", err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, strings.TrimRight(string(secret), "\r\n"), ""),
		Secure: cfg.UseTLS,
		Region: cfg.Region,
		// MinIO and most S3 look-alikes are addressed by path; virtual
		// hosts need DNS for every bucket.
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: S3 client: %w", err)
	}
	s := &S3{client: client, core: &minio.Core{Client: client}, bucket: cfg.Bucket}
	s.parts.New = func() any { b := make([]byte, s3PartSize); return &b }
	return s, nil
}

// Check reports whether the bucket exists and is reachable, for readiness
// probes.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: S3 bucket %q: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("blob: S3 bucket %q does not exist", s.bucket)
	}
	return nil
}

// errExists is how the upload paths say the key is taken.
var errExists = errors.New("object exists")

// Put makes the first writer of a key win atomically on the service, with
// If-None-Match: * on the request that creates the object: the PUT of a
// blob that fits in one part (most MeMos), or the CompleteMultipartUpload
// of a larger one. When the key is taken, the stored object is read back
// and hashed: equal bytes make the Put idempotent, different bytes are
// ErrConflict. (ETags cannot be compared instead: for multipart uploads
// they are not content hashes.)
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (Ref, error) {
	if err := CheckKey(key); err != nil {
		return Ref{}, err
	}
	hr := newHashingReader(ctxReader{ctx, r})
	bp := s.parts.Get().(*[]byte)
	defer s.parts.Put(bp)
	buf := *bp
	n, err := io.ReadFull(hr, buf)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // it all fits in one part
		err = s.putSingle(ctx, key, buf[:n], hr.ref(key).SHA256)
	case nil:
		err = s.putMultipart(ctx, key, hr, buf)
	default:
		return Ref{}, fmt.Errorf("blob: reading %q: %w", key, err)
	}
	if err == nil {
		return hr.ref(key), nil
	}
	if !errors.Is(err, errExists) {
		return Ref{}, fmt.Errorf("blob: storing %q: %w", key, err)
	}
	// Hash what the upload did not read, then compare.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return Ref{}, fmt.Errorf("blob: reading %q: %w", key, err)
	}
	ref := hr.ref(key)
	return ref, s.same(ctx, ref)
}

// putSingle sends the whole blob in one PUT, signed with its SHA-256 and
// carrying its MD5, so the service verifies the body too.
func (s *S3) putSingle(ctx context.Context, key string, data []byte, sha256Hex string) error {
	sum := md5.Sum(data)
	// DisableContentSha256 turns off minio-go's chunk-signed streaming
	// body, so that the signature covers sha256Hex, the hash we have.
	opts := minio.PutObjectOptions{ContentType: contentType, DisableContentSha256: true}
	opts.SetMatchETagExcept("*")
	_, err := s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)),
		base64.StdEncoding.EncodeToString(sum[:]), sha256Hex, opts)
	if isPreconditionFailed(err) {
		return errExists
	}
	return err
}

// putMultipart uploads r in parts through buf, which holds the first part
// already: one part in memory at a time. Parts carry their MD5 and an
// unsigned payload (signing would be a second SHA-256 pass; the Ref's hash
// is checked end to end on every Get).
//
// Not every S3 look-alike honours If-None-Match on
// CompleteMultipartUpload (AWS S3 and MinIO do), so an existing key is
// also looked for first: that keeps the sequential case (a retry, a
// conflicting second send) right everywhere and spares re-uploading a
// large blob that is already there.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, buf []byte) (err error) {
	if _, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		return errExists
	} else if !isNotFound(err) {
		return err
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Parts of an abandoned upload are stored (and billed) until
			// aborted; abort even when ctx is what failed.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			s.core.AbortMultipartUpload(actx, s.bucket, key, id)
		}
	}()
	var parts []minio.CompletePart
	n := len(buf)
	for num := 1; ; num++ {
		sum := md5.Sum(buf[:n])
		p, err := s.core.PutObjectPart(ctx, s.bucket, key, id, num, bytes.NewReader(buf[:n]), int64(n),
			minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum[:]), DisableContentSha256: true})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		if n < len(buf) {
			break // that was the short last part
		}
		n, err = io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
	}
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	if _, err = s.core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, opts); isPreconditionFailed(err) {
		return errExists
	}
	return err
}

func (s *S3) same(ctx context.Context, ref Ref) error {
	obj, err := s.client.GetObject(ctx, s.bucket, ref.Key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer obj.Close()
	hr := newHashingReader(obj)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return fmt.Errorf("blob: reading back %q: %w", ref.Key, err)
	}
	if got := hr.ref(ref.Key); got != ref {
		return fmt.Errorf("%w: %q holds %d bytes with sha256 %s", ErrConflict, ref.Key, got.Size, got.SHA256)
	}
	return nil
}

// Get downloads the blob; see Store.
func (s *S3) Get(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, ref.Key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, ref.Key)
		}
		return nil, fmt.Errorf("blob: %w", err)
	}
	if st.Size != ref.Size {
		obj.Close()
		return nil, fmt.Errorf("%w: %q: %d bytes stored, want %d", ErrCorrupt, ref.Key, st.Size, ref.Size)
	}
	return newVerifier(obj, ref), nil
}

// Delete removes the object; S3 deletes are idempotent already.
func (s *S3) Delete(ctx context.Context, ref Ref) error {
	if err := CheckKey(ref.Key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, ref.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("blob: deleting %q: %w", ref.Key, err)
	}
	return nil
}

// Walk lists the bucket; see Store. Objects whose names are not valid keys
// (put there by something else) are skipped.
func (s *S3) Walk(ctx context.Context, fn func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister when fn fails
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("blob: listing %q: %w", s.bucket, o.Err)
		}
		if CheckKey(o.Key) != nil {
			continue
		}
		if err := fn(Info{Key: o.Key, Size: o.Size, ModTime: o.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func isNotFound(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound)
}

func isPreconditionFailed(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == "PreconditionFailed" || er.StatusCode == http.StatusPreconditionFailed)
}
