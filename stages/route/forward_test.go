package route

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
)

const (
	compFwdSecure = "31313131" // mailbox only, forwards to a trusted third party
	compFwdPickup = "32323232" // mailbox only, forwards to a pickup system
	trusted       = "33333333" // the trusted third party
	auth3Fwd      = "34343434" // authority without systems (setup 3) that forwards
)

func forwardRegistry() []registry.Entity {
	return append(testRegistry(),
		&registry.Company{CVR: compFwdSecure, Status: registry.Registered, Mailbox: "mbox",
			Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}},
		&registry.Company{CVR: compFwdPickup, Status: registry.Registered, Mailbox: "mbox",
			Forward: registry.Forwarding{Kind: registry.ForwardPickup, To: "https://pickup.example/in", Credentials: "secret:pickup"}},
		&registry.Company{CVR: trusted, Status: registry.Registered, Mailbox: "mbox"},
		&registry.Org{CVR: auth3Fwd, Name: "Videresendende Styrelse", Type: registry.OrgAuthority, Setup: 3},
		&registry.Company{CVR: auth3Fwd, Status: registry.Registered, Mailbox: "mbox",
			Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}},
	)
}

// TestForwardRules: which routed messages also get a forward request, and
// that it is the routed envelope with the decision in its headers.
func TestForwardRules(t *testing.T) {
	dp, cvr := records.TypeDigitalPost, records.IDCVR
	cases := []struct {
		name string
		e    *records.Envelope
		kind registry.ForwardKind // 0: no forward request
		to   string
	}{
		{"forwarding set, secure mailbox", env(cvr, compFwdSecure, PostVirksomhed, "", dp), registry.ForwardSecureMailbox, trusted},
		{"forwarding set, pickup URL", env(cvr, compFwdPickup, PostVirksomhed, "", dp), registry.ForwardPickup, "https://pickup.example/in"},
		{"forwarding set, no postType (all mailbox post)", env(cvr, compFwdPickup, "", "", dp), registry.ForwardPickup, "https://pickup.example/in"},
		{"forwarding not set", env(cvr, company2, PostVirksomhed, "", dp), 0, ""},
		{"company with its own system never forwards", env(cvr, company, PostVirksomhed, "", dp), 0, ""},
		{"authority without systems forwards its mailbox post (seed 002)", env(cvr, auth3Fwd, PostVirksomhed, "", dp), registry.ForwardSecureMailbox, trusted},
		{"authority with systems never forwards", env(cvr, auth, PostVirksomhed, "", dp), 0, ""},
		{"citizen never forwards", env(records.IDCPR, citizen, "", "", dp), 0, ""},
		{"exempt company: to print, not forwarded", env(cvr, companyEx, PostVirksomhed, "", dp), 0, ""},
	}
	s := newStage(t, newView(forwardRegistry()...), noon)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &pipeline.Batch{Records: []*kgo.Record{{Topic: pipeline.TopicReady, Value: c.e.Append(nil)}}}
			if err := s.Transform(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			var routed, fwd *kgo.Record
			for _, r := range b.Outputs() {
				switch r.Topic {
				case pipeline.TopicRouted:
					routed = r
				case pipeline.TopicForward:
					if fwd != nil {
						t.Fatal("two forward requests")
					}
					fwd = r
				}
			}
			if routed == nil {
				t.Fatal("not routed")
			}
			if c.kind == 0 {
				if fwd != nil {
					t.Fatalf("forward request %v", fwd.Headers)
				}
				return
			}
			if fwd == nil {
				t.Fatal("no forward request")
			}
			var q ForwardRequest
			if err := DecodeForward(fwd, &q); err != nil {
				t.Fatal(err)
			}
			if q.Forward.Kind != c.kind || q.Forward.To != c.to {
				t.Errorf("forward %+v, want %s to %s", q.Forward, c.kind, c.to)
			}
			if c.kind == registry.ForwardPickup && q.Forward.Credentials != "secret:pickup" {
				t.Errorf("credentials reference %q", q.Forward.Credentials)
			}
			if !bytes.Equal(fwd.Value, routed.Value) || string(fwd.Key) != c.e.MessageUUID {
				t.Error("the forward request is not the routed envelope keyed by messageUUID")
			}
			if q.Env.Destination != "mbox" {
				t.Errorf("the letter is not in the mailbox: %s", q.Env.Destination)
			}
		})
	}
}

// TestForwardCopiesBlob: a claim-checked body within the limit gets the
// forward's own blob (the mailbox delivery may delete the original first);
// an oversize one is not copied.
func TestForwardCopiesBlob(t *testing.T) {
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := bytes.Repeat([]byte("<memo>x</memo>"), 1000)
	ref, err := store.Put(ctx, "12345678/blob-1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(newView(forwardRegistry()...), testPseudo(t), DefaultConfig(), WithBlobStore(store))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(to string, size uint64) *records.Envelope {
		e := env(records.IDCVR, to, PostVirksomhed, "", records.TypeDigitalPost)
		e.Body, e.BlobKey, e.Size = nil, ref.Key, size
		sum := sha256.Sum256(body)
		e.ContentSHA256 = sum
		return e
	}
	run := func(e *records.Envelope) ForwardRequest {
		t.Helper()
		b := &pipeline.Batch{Records: []*kgo.Record{{Value: e.Append(nil)}}}
		if err := s.Transform(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Outputs() {
			if r.Topic == pipeline.TopicForward {
				var q ForwardRequest
				if err := DecodeForward(r, &q); err != nil {
					t.Fatal(err)
				}
				return q
			}
			if r.Topic == pipeline.TopicRouted {
				var m records.Envelope
				if err := m.Decode(r.Value); err != nil || m.BlobKey != ref.Key {
					t.Fatalf("the mailbox copy's blob changed: %q %v", m.BlobKey, err)
				}
			}
		}
		t.Fatal("no forward request")
		return ForwardRequest{}
	}
	q := run(mk(compFwdPickup, uint64(len(body))))
	if q.Env.BlobKey != ForwardBlobKey(ref.Key) || !IsForwardBlob(q.Env.BlobKey) {
		t.Fatalf("forward blob key %q", q.Env.BlobKey)
	}
	rc, err := store.Get(ctx, blob.Ref{Key: q.Env.BlobKey, Size: ref.Size, SHA256: ref.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("copy differs: %v", err)
	}
	// The original can go now; the copy stays.
	if err := store.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, blob.Ref{Key: q.Env.BlobKey, Size: ref.Size, SHA256: ref.SHA256}); err != nil {
		t.Fatalf("copy gone with the original: %v", err)
	}
	// Oversize for a secure mailbox (10 MB): not copied, the request keeps
	// the original key (the forward stage refuses it without reading).
	if _, err := store.Put(ctx, ref.Key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	q = run(mk(compFwdSecure, registry.MaxForwardSecureMailbox+1))
	if q.Env.BlobKey != ref.Key {
		t.Fatalf("oversize request blob %q", q.Env.BlobKey)
	}
}
