package records

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sample() Envelope {
	e := Envelope{
		MessageUUID: "6f1c2f54-8a5b-4bb3-9a7c-0f5d6c8e1a2b", MessageID: "M-1", TransmissionID: "t-1",
		MemoVersion: 12, MessageType: TypeDigitalPost, PostType: "MYNDIGHEDSPOST", Label: "Din skat",
		SenderOrg: "12345678", SenderSystem: "sys-1", RecipientType: IDCPR, RecipientID: "0101701234",
		ContactPointID: "cp-7", ValueDate: 20000, ReceivedAtMs: 1_790_000_000_000, Size: 1234,
		Attachments: 2, MassSend: true, BlobKey: "", Destination: "mbx", DestinationProtocol: 1,
		WantVersion: 11, Attempt: 3, NextAttemptMs: -5, Body: []byte("<Message/>"),
	}
	e.ContentSHA256[0], e.ContentSHA256[31] = 1, 2
	return e
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{sample(), {}} {
		b := e.Append(nil)
		if len(b) > e.EncodedLen() {
			t.Errorf("EncodedLen %d < actual %d", e.EncodedLen(), len(b))
		}
		var got Envelope
		if err := got.Decode(b); err != nil {
			t.Fatal(err)
		}
		if len(e.Body) == 0 {
			got.Body, e.Body = nil, nil
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
}

func TestEnvelopeRejects(t *testing.T) {
	good := sample()
	b := good.Append(nil)
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"format":    append([]byte{9}, b[1:]...),
		"truncated": b[:len(b)-3],
		"trailing":  append(append([]byte{}, b...), 0),
		"huge len":  {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var e Envelope
		if err := e.Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzEnvelope(f *testing.F) {
	s := sample()
	f.Add(s.Append(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Envelope
		if err := e.Decode(b); err != nil {
			return
		}
		// What decodes survives a round trip unchanged (the input may use
		// non-canonical varints, so compare values, not bytes).
		var again Envelope
		if err := again.Decode(e.Append(nil)); err != nil {
			t.Fatalf("re-decoding failed: %v", err)
		}
		if len(again.Body) == 0 && len(e.Body) == 0 {
			again.Body, e.Body = nil, nil
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip changed the envelope")
		}
	})
}

func TestIngestMeta(t *testing.T) {
	m := IngestMeta{MessageUUID: "u", TransmissionID: "t", SenderOrg: "12345678", SenderSystem: "s",
		ReceivedAt: time.UnixMilli(1_790_000_000_123), MassSend: true, ContentSHA256: "ab", BlobKey: "k", Size: 42}
	r := NewIngestRecord("memo.ingest", m, []byte("x"))
	if got := ReadIngestMeta(r); !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v want %+v", got, m)
	}
}

func BenchmarkEnvelope(b *testing.B) {
	e := sample()
	e.Body = bytes.Repeat([]byte("x"), 3000)
	buf := make([]byte, 0, e.EncodedLen())
	b.ReportAllocs()
	b.SetBytes(int64(len(e.Append(nil))))
	for b.Loop() {
		buf = e.Append(buf[:0])
		var d Envelope
		if err := d.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
