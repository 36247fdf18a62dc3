package route

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Forwarding of company post (seed 001, "Videresendelse fra Virk.dk"): a
// company without its own recipient system may have its mailbox post
// forwarded to a trusted third party's secure mailbox or to a pickup
// system by URL. Route decides it together with the mailbox delivery and
// emits a forward request on memo.forward in the same transaction: the
// letter always lands in the mailbox (which keeps its copy, as on Virk),
// and is forwarded if and only if it was routed there. stages/forward
// carries the request out (stages/forward/DESIGN.md).
//
// The request is the routed Envelope (Destination = the company's
// mailbox provider) with the decision in headers, so it is
// self-describing: a replay forwards where the registry said at routing
// time, like the routing decision itself.
const (
	// HeaderForwardKind is registry.ForwardKind.String(): "secure-mailbox"
	// or "pickup".
	HeaderForwardKind = "memoflow.forward.kind"
	// HeaderForwardTo is the trusted third party's CVR, or the pickup
	// system's https URL.
	HeaderForwardTo = "memoflow.forward.to"
	// HeaderForwardCredentials is the pickup system's credential reference
	// (secret:/file:), resolved only when the forward is attempted. Never
	// the secret itself.
	HeaderForwardCredentials = "memoflow.forward.credentials"

	// ForwardBlobPrefix prefixes the blob key of a forward's own copy of a
	// claim-checked body. The mailbox delivery deletes the original blob
	// when the letter reached the mailbox, possibly before the forward
	// read it, so the forward gets its own blob and emits its own
	// blobgc.Done.
	ForwardBlobPrefix = "forward/"
)

// ForwardLimit is the largest MeMo (bytes, as submitted) that may be
// forwarded by kind (seed 001: 10 MB to a secure mailbox, 99.5 MB to a
// pickup system); 0 for an unknown kind.
func ForwardLimit(k registry.ForwardKind) uint64 {
	switch k {
	case registry.ForwardSecureMailbox:
		return registry.MaxForwardSecureMailbox
	case registry.ForwardPickup:
		return registry.MaxForwardPickup
	}
	return 0
}

// ForwardBlobKey is the key of the forward's copy of the blob under key.
func ForwardBlobKey(key string) string { return ForwardBlobPrefix + key }

// IsForwardBlob reports whether key is a forward's own copy (which the
// forward, not the mailbox delivery, releases).
func IsForwardBlob(key string) bool { return strings.HasPrefix(key, ForwardBlobPrefix) }

// forwardRecord is the memo.forward record of e (already routed to the
// mailbox). A claim-checked body within the kind's limit is copied to the
// forward's own blob first; an oversize one is not copied, since it will
// not be forwarded (the forward stage says so with an event).
func (s *Stage) forwardRecord(ctx context.Context, e *records.Envelope, f registry.Forwarding) (*kgo.Record, error) {
	fe := *e
	if fe.BlobKey != "" && fe.Size <= ForwardLimit(f.Kind) && s.blobs != nil {
		key, err := s.copyBlob(ctx, &fe)
		switch {
		case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrCorrupt):
			// The mailbox delivery fails on it too (permanently); the
			// forward finds the original unreadable and says so.
		case err != nil:
			return nil, pipeline.Transient(fmt.Errorf("route: copy blob %s for forwarding: %w", fe.BlobKey, err))
		default:
			fe.BlobKey = key
		}
	}
	// Without a blob store (tests, tools) the request refers to the
	// original blob; cmd/memoflow always passes one.
	h := []kgo.RecordHeader{
		{Key: HeaderForwardKind, Value: []byte(f.Kind.String())},
		{Key: HeaderForwardTo, Value: []byte(f.To)},
	}
	if f.Credentials != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderForwardCredentials, Value: []byte(f.Credentials)})
	}
	return &kgo.Record{Topic: pipeline.TopicForward, Key: []byte(fe.MessageUUID), Headers: h,
		Value: fe.Append(make([]byte, 0, fe.EncodedLen()))}, nil
}

// copyBlob copies e's blob to the forward's key (streaming; Put is
// idempotent, so a retried batch copies nothing twice).
func (s *Stage) copyBlob(ctx context.Context, e *records.Envelope) (string, error) {
	ref := blob.Ref{Key: e.BlobKey, Size: int64(e.Size), SHA256: hex.EncodeToString(e.ContentSHA256[:])}
	key := ForwardBlobKey(e.BlobKey)
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	rc, err := s.blobs.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	got, err := s.blobs.Put(ctx, key, rc)
	if err != nil {
		return "", err
	}
	if got.SHA256 != ref.SHA256 {
		return "", fmt.Errorf("%w: copy of %s has sha256 %s", blob.ErrCorrupt, ref.Key, got.SHA256)
	}
	return key, nil
}

// ForwardRequest is a decoded memo.forward record.
type ForwardRequest struct {
	Env         records.Envelope
	Forward     registry.Forwarding
	Attempt     int   // failed attempts so far (retries)
	FirstFailMs int64 // first failed attempt (Unix ms), 0 before
}

// Headers of a forward that failed and waits for its next attempt
// (stages/forward).
const (
	HeaderForwardAttempt   = "memoflow.forward.attempt"
	HeaderForwardFirstFail = "memoflow.forward.first-failure"
	HeaderForwardDue       = "memoflow.forward.due"
)

// ErrBadForward is wrapped by DecodeForward's errors.
var ErrBadForward = errors.New("malformed forward request")

// DecodeForward reads r into q. Env.Body aliases r.Value.
func DecodeForward(r *kgo.Record, q *ForwardRequest) error {
	*q = ForwardRequest{}
	if err := q.Env.Decode(r.Value); err != nil {
		return fmt.Errorf("%w: %w", ErrBadForward, err)
	}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderForwardKind:
			q.Forward.Kind = registry.ParseForwardKind(string(h.Value))
		case HeaderForwardTo:
			q.Forward.To = string(h.Value)
		case HeaderForwardCredentials:
			q.Forward.Credentials = string(h.Value)
		case HeaderForwardAttempt:
			n, _ := strconv.Atoi(string(h.Value))
			q.Attempt = n
		case HeaderForwardFirstFail:
			q.FirstFailMs, _ = strconv.ParseInt(string(h.Value), 10, 64)
		}
	}
	if !q.Forward.Set() || q.Forward.To == "" {
		return fmt.Errorf("%w: no forwarding kind or target in the headers", ErrBadForward)
	}
	return nil
}
