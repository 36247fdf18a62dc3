package validate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// A claim-checked message is read from the blob store, validated, and
// passed on by reference (no body in the envelope).
func TestClaimCheckedMessage(t *testing.T) {
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(memoXML(""))
	sum := sha256.Sum256(body)
	ref, err := store.Put(context.Background(), "12345678/"+uuid, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	meta := records.IngestMeta{MessageUUID: uuid, TransmissionID: "t", SenderOrg: "12345678", SenderSystem: "s",
		ReceivedAt: time.Now(), ContentSHA256: hex.EncodeToString(sum[:]), BlobKey: ref.Key, Size: len(body)}
	s := newStage(t)
	s.Blobs = store
	b := &pipeline.Batch{Records: []*kgo.Record{records.NewIngestRecord(pipeline.TopicIngest, meta, nil)}}
	if err := s.Transform(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	valid := byTopic(b.Outputs())[pipeline.TopicValid]
	if len(valid) != 1 {
		t.Fatalf("%d valid outputs (rejected %d)", len(valid), b.Rejected())
	}
	var env records.Envelope
	if err := env.Decode(valid[0].Value); err != nil {
		t.Fatal(err)
	}
	if env.BlobKey != ref.Key || len(env.Body) != 0 || env.Size != uint64(len(body)) {
		t.Fatalf("envelope blob=%q body=%d size=%d", env.BlobKey, len(env.Body), env.Size)
	}

	// A missing or corrupt blob is poison, not a retry loop.
	meta.BlobKey = "12345678/missing"
	b = &pipeline.Batch{Records: []*kgo.Record{records.NewIngestRecord(pipeline.TopicIngest, meta, nil)}}
	if err := s.Transform(context.Background(), b); err != nil || b.Rejected() != 1 {
		t.Fatalf("missing blob: err %v, rejected %d", err, b.Rejected())
	}
	meta.BlobKey = ref.Key
	meta.ContentSHA256 = strings.Repeat("0", 64)
	b = &pipeline.Batch{Records: []*kgo.Record{records.NewIngestRecord(pipeline.TopicIngest, meta, nil)}}
	if err := s.Transform(context.Background(), b); err != nil || b.Rejected() != 1 {
		t.Fatalf("hash mismatch: err %v, rejected %d", err, b.Rejected())
	}
}
