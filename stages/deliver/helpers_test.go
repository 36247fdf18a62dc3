package deliver

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// clock is an injectable time source tests move by hand.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ms.Store(t.UnixMilli())
	return c
}
func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ms.Store(t.UnixMilli()) }
func (c *clock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func testPseudo(t testing.TB) *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func quiet() *slog.Logger {
	if os.Getenv("MEMOFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// simServer starts a simulator behind an HTTP server.
func simServer(t testing.TB, cfg recipientsim.Config) (*recipientsim.Sim, string) {
	t.Helper()
	sim, err := recipientsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func pushSystem(id, base string) System {
	return System{ID: id, Org: "12345678", Protocol: ProtoPush, Endpoint: base + recipientsim.PushPath(id), Active: true, WantVersion: 12, Contact: "it@" + id + ".example"}
}

func testEnv(i int, dest string) *records.Envelope {
	return &records.Envelope{
		MessageUUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), MessageID: "m", TransmissionID: "tx-1",
		MemoVersion: 12, MessageType: records.TypeDigitalPost, PostType: "MYNDIGHEDSPOST",
		SenderOrg: "87654321", SenderSystem: "sender-1", RecipientType: records.IDCVR, RecipientID: "12345678",
		ReceivedAtMs: t0.UnixMilli(), Size: 5, Destination: dest, DestinationProtocol: uint8(ProtoPush), WantVersion: 12,
		Body: []byte("<memo/>"),
	}
}

func envRecord(topic string, e *records.Envelope) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(e.Destination), Value: e.Append(nil)}
}

// outputs groups records by topic.
func byTopic(recs []*kgo.Record) map[string][]*kgo.Record {
	m := map[string][]*kgo.Record{}
	for _, r := range recs {
		m[r.Topic] = append(m[r.Topic], r)
	}
	return m
}

func eventTags(t testing.TB, recs []*kgo.Record) []events.Tag {
	t.Helper()
	var tags []events.Tag
	for _, r := range recs {
		evs, err := events.Decode(r.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			tags = append(tags, e.Tag)
		}
	}
	return tags
}

func testConfig() Config {
	c := DefaultConfig()
	c.Timeout = 2 * time.Second
	c.MaxIdle = 20 * time.Millisecond
	// Off: on a loaded machine a push can average above the threshold and
	// move messages to the slow lane, which these tests do not expect
	// (TestSlowSystemLane turns it on).
	c.SlowThreshold = 0
	return c
}
