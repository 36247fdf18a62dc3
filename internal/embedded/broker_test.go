package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	b, err := Start(Config{Port: 0, DataDir: dir, CleanerBackoffMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		cl.Produce(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	port := strings.Split(addr, ":")[1]
	var p int
	fmt.Sscan(port, &p)
	b2, err := Start(Config{Port: p, DataDir: dir, CleanerBackoffMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b2.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	ends, err := kadm.NewClient(cl2).ListEndOffsets(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 100 {
		t.Fatalf("after restart the topic ends at %d records, want 100", total)
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(Config{Port: port, DataDir: t.TempDir(), CleanerBackoffMs: 1000})
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("Start on a used port = %v, want ErrPortInUse", err)
	}
}

// TestKcat: a third-party client (librdkafka's kcat) produces and consumes
// against the embedded broker, and franz-go reads what kcat wrote.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (scripts/test-deps.sh installs it); skipping the third-party client check")
	}
	b, err := Start(Config{Port: 0, DataDir: t.TempDir(), CleanerBackoffMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := exec.CommandContext(ctx, kcat, "-b", addr, "-t", "kc", "-P", "-K:", "-z", "snappy")
	prod.Stdin = strings.NewReader("a:one\nb:two\nc:three\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v: %s", err, out)
	}
	cons := exec.CommandContext(ctx, kcat, "-b", addr, "-t", "kc", "-C", "-e", "-q", "-f", "%k=%s\n")
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	if got := strings.Count(string(out), "\n"); got != 3 {
		t.Fatalf("kcat read %d records: %q", got, out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("kc"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := 0
	for seen < 3 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(*kgo.Record) { seen++ })
	}
	if seen != 3 {
		t.Fatalf("franz-go read %d of kcat's 3 records", seen)
	}
}
