package forward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/route"
)

func newStage(t testing.TB, v Directory, opts ...Option) *Stage {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Timeout = 2 * time.Second
	s, err := New(cfg, v, testPseudo(t), append([]Option{WithSecrets(secrets), WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t testing.TB, s *Stage, recs ...*kgo.Record) (outputs, *pipeline.Batch) {
	t.Helper()
	b := &pipeline.Batch{Records: recs}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return sortOut(t, b.Outputs()), b
}

const uuid1 = "0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0001"

// TestSecureMailbox: the copy is routed to the trusted third party's
// destination under its own messageUUID; refusals say why.
func TestSecureMailbox(t *testing.T) {
	v := testView("http://mailbox.invalid", "https://pickup.invalid/in")
	s := newStage(t, v)
	cases := []struct {
		name    string
		company string
		to      string
		size    int
		dest    string   // "" when not forwarded
		tags    []string // events, in order
	}{
		{"to a trusted party's mailbox", compSecure, trusted, 2000, "mbox",
			[]string{"MESSAGE_FORWARDED_TO_TRUSTED", "MEMO_SEND_ROUTED"}},
		{"to a trusted party's own recipient system (VIRKSOMHEDSPOST)", compSecure2, trusted2, 2000, "trusted2-sys",
			[]string{"MESSAGE_FORWARDED_TO_TRUSTED", "MEMO_SEND_ROUTED"}},
		{"exactly 10 MB is forwarded", compSecure, trusted, registry.MaxForwardSecureMailbox, "mbox",
			[]string{"MESSAGE_FORWARDED_TO_TRUSTED", "MEMO_SEND_ROUTED"}},
		{"above 10 MB stays in the mailbox", compSecure, trusted, registry.MaxForwardSecureMailbox + 1, "",
			[]string{"MESSAGE_FORWARD_FAILED:" + CodeTooLargeSecureMailbox}},
		{"trusted party not signed up", compBadTrust, notSignedUp, 2000, "",
			[]string{"MESSAGE_FORWARD_FAILED:" + CodeTrustedNotRegistered}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := message(uuid1, c.company, c.size)
			o, _ := write(t, s, request(e, registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: c.to}))
			if got := strings.Join(o.tags(), ","); got != strings.Join(c.tags, ",") {
				t.Fatalf("events %s, want %s", got, strings.Join(c.tags, ","))
			}
			if o.events[0].MessageUUID != uuid1 || o.events[0].SenderOrg != sender {
				t.Errorf("the forward event is not the original's: %+v", o.events[0])
			}
			if c.dest == "" {
				if len(o.routed) != 0 {
					t.Fatal("refused but routed")
				}
				return
			}
			if len(o.routed) != 1 {
				t.Fatalf("%d copies", len(o.routed))
			}
			var cp records.Envelope
			if err := cp.Decode(o.routed[0].Value); err != nil {
				t.Fatal(err)
			}
			if cp.Destination != c.dest || route.DestinationOf(o.routed[0].Key) != c.dest {
				t.Errorf("copy to %s (key %s), want %s", cp.Destination, o.routed[0].Key, c.dest)
			}
			want := CopyUUID(uuid1, c.to)
			if cp.MessageUUID != want || cp.MessageUUID == uuid1 || cp.TransmissionID != uuid1 {
				t.Errorf("copy uuid %s transmission %s", cp.MessageUUID, cp.TransmissionID)
			}
			if cp.SenderOrg != c.company || cp.SenderSystem != SenderSystemForward || cp.RecipientID != c.to || cp.RecipientType != records.IDCVR {
				t.Errorf("copy addressing %+v", cp)
			}
			if !bytes.Equal(cp.Body, e.Body) {
				t.Error("the copy's MeMo differs from the original")
			}
			if o.events[0].RecipientSystem != c.dest || o.events[1].MessageUUID != want || o.events[1].RecipientSystem != c.dest {
				t.Errorf("events %+v", o.events)
			}
			// Deterministic: the same request again makes the same copy.
			o2, _ := write(t, s, request(e, registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: c.to}))
			if !bytes.Equal(o2.routed[0].Value, o.routed[0].Value) || !bytes.Equal(o2.routed[0].Key, o.routed[0].Key) {
				t.Error("a repeated request makes another copy")
			}
		})
	}
}

// TestPickup: the outcomes of a POST to a pickup system.
func TestPickup(t *testing.T) {
	rv, base := newReceiver(t)
	url := base + "/in"
	v := testView("http://mailbox.invalid", url)
	fw := registry.Forwarding{Kind: registry.ForwardPickup, To: url, Credentials: "secret:pickup-test"}

	t.Run("success", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0101", compPickup, 3000)
		o, _ := write(t, s, request(e, fw))
		if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARDED_TO_TRUSTED" {
			t.Fatalf("events %s", got)
		}
		body, _, ok := rv.got(e.MessageUUID)
		if !ok || !bytes.Equal(body, e.Body) {
			t.Fatal("the pickup system did not get the MeMo")
		}
		rv.mu.Lock()
		a := rv.auth[e.MessageUUID]
		rv.mu.Unlock()
		if a != "Bearer pickup-token" {
			t.Errorf("authorization %q", a)
		}
		if o.events[0].RecipientSystem != "pickup:"+strings.TrimPrefix(base, "http://") {
			t.Errorf("target %q", o.events[0].RecipientSystem)
		}
		if len(o.retries)+len(o.routed)+len(o.other) != 0 {
			t.Error("unexpected outputs")
		}
	})
	t.Run("5xx then success on the retried record", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0102", compPickup, 3000)
		rv.status = func(key string, n int) int {
			if key == e.MessageUUID && n == 1 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}
		defer func() { rv.status = nil }()
		o, _ := write(t, s, request(e, fw))
		if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARD_ATTEMPT_FAILED:"+deliver.CodeHTTPStatus {
			t.Fatalf("events %s", got)
		}
		if len(o.retries) != 1 || header(o.retries[0], route.HeaderForwardAttempt) != "1" {
			t.Fatalf("retry %v", o.retries)
		}
		due, _ := strconv.ParseInt(header(o.retries[0], route.HeaderForwardDue), 10, 64)
		if d := time.Until(time.UnixMilli(due)); d < 9*time.Minute || d > 11*time.Minute {
			t.Errorf("due in %v, want the 10 minute gap", d)
		}
		// The timer moves it back; the second attempt succeeds.
		moved, _ := mover{s.metrics}.Handle(context.Background(), o.retries)
		moved[0].Offset = 99
		o, _ = write(t, s, moved[0])
		if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARDED_TO_TRUSTED" {
			t.Fatalf("second attempt: %s", got)
		}
		rv.mu.Lock()
		n := rv.calls[e.MessageUUID]
		rv.mu.Unlock()
		if n != 2 {
			t.Errorf("%d calls", n)
		}
		// The timer moving the same retry twice: the second is dropped.
		moved[0].Offset = 100
		o, _ = write(t, s, moved[0])
		if len(o.events) != 0 {
			t.Errorf("a duplicate move forwarded again: %v", o.tags())
		}
	})
	t.Run("4xx is permanent", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0103", compPickup, 3000)
		rv.status = func(string, int) int { return http.StatusForbidden }
		defer func() { rv.status = nil }()
		o, _ := write(t, s, request(e, fw))
		want := "MESSAGE_FORWARD_ATTEMPT_FAILED:" + deliver.CodeHTTPStatus + ",MESSAGE_FORWARD_FAILED:" + CodePickupRejected
		if got := strings.Join(o.tags(), ","); got != want || len(o.retries) != 0 {
			t.Fatalf("events %s retries %d", got, len(o.retries))
		}
	})
	t.Run("429 is retried", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0104", compPickup, 3000)
		rv.status = func(string, int) int { return http.StatusTooManyRequests }
		defer func() { rv.status = nil }()
		o, _ := write(t, s, request(e, fw))
		if len(o.retries) != 1 {
			t.Fatalf("events %v", o.tags())
		}
	})
	t.Run("above 99.5 MB stays in the mailbox, no call", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0105", compPickup, 10)
		e.Size = registry.MaxForwardPickup + 1
		before := rv.total.Load()
		o, _ := write(t, s, request(e, fw))
		if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARD_FAILED:"+CodeTooLargePickup || rv.total.Load() != before {
			t.Fatalf("events %s, calls %d", got, rv.total.Load()-before)
		}
	})
	t.Run("retries run out", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.MaxAttempts = 3
		s, err := New(cfg, v, testPseudo(t), WithSecrets(secrets), WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0106", compPickup, 3000)
		rv.status = func(string, int) int { return http.StatusBadGateway }
		defer func() { rv.status = nil }()
		r := request(e, fw)
		for i := range 3 {
			o, _ := write(t, s, r)
			if i < 2 {
				if len(o.retries) != 1 {
					t.Fatalf("attempt %d: %v", i+1, o.tags())
				}
				moved, _ := mover{s.metrics}.Handle(context.Background(), o.retries)
				r = moved[0]
				r.Offset = int64(i + 1)
				continue
			}
			want := "MESSAGE_FORWARD_ATTEMPT_FAILED:" + deliver.CodeHTTPStatus + ",MESSAGE_FORWARD_FAILED:" + CodePickupExhausted
			if got := strings.Join(o.tags(), ","); got != want || len(o.retries) != 0 {
				t.Fatalf("last attempt: %s", got)
			}
		}
	})
	t.Run("missing credential is retried, never sent empty", func(t *testing.T) {
		s := newStage(t, v)
		e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0107", compPickup, 3000)
		before := rv.total.Load()
		o, _ := write(t, s, request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: url, Credentials: "secret:nope"}))
		if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARD_ATTEMPT_FAILED:"+CodeCredentialsMissing || len(o.retries) != 1 || rv.total.Load() != before {
			t.Fatalf("events %s", got)
		}
	})
	t.Run("connection refused cools the URL down", func(t *testing.T) {
		s := newStage(t, v)
		dead := "http://127.0.0.1:1/in"
		var recs []*kgo.Record
		for i := range 6 {
			e := message(fmt.Sprintf("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e02%02d", i), compPickup, 100)
			recs = append(recs, request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: dead}))
		}
		o, _ := write(t, s, recs...)
		if len(o.retries) != 6 {
			t.Fatalf("%d retries: %v", len(o.retries), o.tags())
		}
		cooled := 0
		for _, ev := range o.events {
			if ev.ErrorCode == CodeCooling {
				cooled++
			}
		}
		// PerTarget (4) calls may start before the first failure is known.
		if cooled < 6-DefaultConfig().PerTarget {
			t.Errorf("%d of 6 skipped the call: %v", cooled, o.tags())
		}
	})
}

// TestCallBudget: records not reached within the budget go back to
// memo.forward unchanged, not counted as an attempt.
func TestCallBudget(t *testing.T) {
	rv, base := newReceiver(t)
	rv.status = func(string, int) int { time.Sleep(30 * time.Millisecond); return http.StatusOK }
	cfg := DefaultConfig()
	cfg.CallBudget, cfg.PerTarget = 50*time.Millisecond, 1
	s, err := New(cfg, testView("http://x.invalid", base), testPseudo(t), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 10 {
		e := message(fmt.Sprintf("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e03%02d", i), compPickup, 100)
		r := request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: base})
		if i%2 == 1 { // a retried forward, as the timer moved it back
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: route.HeaderForwardAttempt, Value: []byte("1")})
		}
		r.Offset = int64(i)
		recs = append(recs, r)
	}
	o, _ := write(t, s, recs...)
	fwd := 0
	for _, e := range o.events {
		if e.Tag == events.MessageForwardedToTrusted {
			fwd++
		}
	}
	if fwd+len(o.again) != 10 || len(o.again) == 0 || fwd == 0 || len(o.retries) != 0 {
		t.Fatalf("forwarded %d, back to the topic %d, retries %d", fwd, len(o.again), len(o.retries))
	}
	first := recs[10-len(o.again)]
	if !bytes.Equal(o.again[0].Value, first.Value) || header(o.again[0], route.HeaderForwardAttempt) != header(first, route.HeaderForwardAttempt) {
		t.Error("a deferred record was changed")
	}
	// The deferred records come back at new offsets and are carried out,
	// retried ones too (they are not the timer's duplicates).
	rv.status = nil
	for i, r := range o.again {
		r.Offset = int64(100 + i)
	}
	s.cfg.CallBudget = time.Minute
	o2, _ := write(t, s, o.again...)
	n := 0
	for _, e := range o2.events {
		if e.Tag == events.MessageForwardedToTrusted {
			n++
		}
	}
	if n != len(o.again) {
		t.Fatalf("%d of %d deferred forwards carried out: %v", n, len(o.again), o2.tags())
	}
}

// TestClaimCheckedBody: a pickup reads the forward's own blob and
// releases it when done; the original blob is never released here.
func TestClaimCheckedBody(t *testing.T) {
	rv, base := newReceiver(t)
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("<memo>claim</memo>"), 5000)
	ctx := context.Background()
	ref, err := store.Put(ctx, route.ForwardBlobKey("12345678/big"), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s := newStage(t, testView("http://x.invalid", base), WithBlobStore(store))
	e := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0401", compPickup, 0)
	e.Body, e.BlobKey, e.Size, e.ContentSHA256 = nil, ref.Key, uint64(len(body)), sha256.Sum256(body)
	o, _ := write(t, s, request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: base}))
	if got, _, ok := rv.got(e.MessageUUID); !ok || !bytes.Equal(got, body) {
		t.Fatalf("pickup got %d bytes: %v", len(got), o.tags())
	}
	if len(o.blobs) != 1 || !strings.Contains(string(o.blobs[0].Value), ref.Key) {
		t.Fatalf("blob release %v", o.blobs)
	}
	// The original key (an oversize request keeps it): never released here.
	e2 := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0402", compSecure, 0)
	e2.BlobKey, e2.Size = "12345678/orig", registry.MaxForwardSecureMailbox+1
	o, _ = write(t, s, request(e2, registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}))
	if len(o.blobs) != 0 {
		t.Fatal("the mailbox's blob was released by the forward")
	}
	// A forward blob that is gone: not forwarded, said so.
	e3 := message("0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e0403", compPickup, 0)
	e3.Body, e3.BlobKey, e3.Size, e3.ContentSHA256 = nil, route.ForwardBlobKey("12345678/gone"), 100, sha256.Sum256(nil)
	o, _ = write(t, s, request(e3, registry.Forwarding{Kind: registry.ForwardPickup, To: base}))
	if got := strings.Join(o.tags(), ","); got != "MESSAGE_FORWARD_FAILED:"+CodeBodyUnreadable {
		t.Fatalf("events %s", got)
	}
}

func TestMalformedToDLQ(t *testing.T) {
	s := newStage(t, testView("http://x.invalid", "https://p.invalid"))
	e := message(uuid1, compSecure, 10)
	b := &pipeline.Batch{Records: []*kgo.Record{
		{Topic: pipeline.TopicForward, Value: []byte{7, 7}},
		{Topic: pipeline.TopicForward, Value: e.Append(nil)}, // no forwarding headers
	}}
	if err := s.Write(context.Background(), b); err != nil || b.Rejected() != 2 {
		t.Fatalf("err %v rejected %d", err, b.Rejected())
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Timeout = 0 },
		func(c *Config) { c.Workers = 1 },
		func(c *Config) { c.MaxAttempts = 0 },
		func(c *Config) { c.MaxInflightBytes = 10 },
		func(c *Config) { c.RetryGap = 0 },
		func(c *Config) { c.Spread = 0 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckTransactionTimeout(20 * time.Second); err != nil {
		t.Errorf("defaults do not fit the default transaction timeout: %v", err)
	}
	if err := c.CheckTransactionTimeout(10 * time.Second); err == nil {
		t.Error("a call budget beyond the transaction timeout accepted")
	}
}
