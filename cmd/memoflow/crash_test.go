package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/embedded"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// The crash tests run `memoflow stage eventlog` as a real child process:
// this test binary, re-executed with MEMOFLOW_TEST_CHILD=memoflow, runs the
// command line it is given exactly as the memoflow binary would.
func TestMain(m *testing.M) {
	if os.Getenv("MEMOFLOW_TEST_CHILD") == "memoflow" {
		// memoflow refuses MEMOFLOW_* variables it does not know.
		os.Unsetenv("MEMOFLOW_TEST_CHILD")
		os.Exit(execute(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// crashPartitions is the partition count of memo.events in these tests.
const crashPartitions = 4

// crashEventsPerRecord: each memo.events record carries one message step
// of three events, the first on 31 October and the others on 1 November, so
// every insert writes two month partitions (and can fail between them).
const crashEventsPerRecord = 3

var crashPseudonymizer = func() *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "crash1", Secret: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		panic(err)
	}
	return p
}()

// crashRecord is record number i of a run (the same i always gives the
// same events).
func crashRecord(i int) *kgo.Record {
	base := time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC)
	tags := []events.Tag{events.MemoSendReceived, events.MemoSendValidated, events.MemoAvailableToRecipient}
	var rcpt events.Recipient
	if i%2 == 0 {
		rcpt = crashPseudonymizer.Recipient(events.CPR, fmt.Sprintf("%06d%04d", 10190+i%9000, i%10000))
	} else {
		rcpt = crashPseudonymizer.Recipient(events.CVR, fmt.Sprintf("%08d", 20000000+i%1000))
	}
	uuid := fmt.Sprintf("c0000000-0000-4000-8000-%012x", i)
	evs := make([]events.Event, crashEventsPerRecord)
	for j := range evs {
		evs[j] = events.Event{
			Time:            base.Add(time.Duration(j)*700*time.Millisecond + time.Duration(i%997)*time.Microsecond),
			Tag:             tags[j],
			MessageUUID:     uuid,
			TransmissionID:  fmt.Sprintf("tx-%d", i/100),
			SenderOrg:       fmt.Sprintf("%08d", 10000000+i%7),
			SenderSystem:    fmt.Sprintf("sys-%d", i%3),
			Recipient:       rcpt,
			ContactPoint:    fmt.Sprintf("cp-%d", i%5),
			RecipientSystem: fmt.Sprintf("rs-%d", i%4),
			MessageType:     "DIGITALPOST",
			PostType:        "MYNDIGHEDSPOST",
			Size:            uint64(1000 + i%5000),
			Attachments:     uint16(i % 4),
			ReceiptStatus:   "RECEIVED",
		}
	}
	return events.NewRecord(pipeline.TopicEvents, evs...)
}

// crashKafka is an embedded broker with the catalogue's topics and a client.
type crashKafka struct {
	brokers string
	cl      *kgo.Client
	adm     *kadm.Client
}

func newCrashKafka(t *testing.T) crashKafka {
	t.Helper()
	b, err := embedded.Start(embedded.Config{DataDir: filepath.Join(t.TempDir(), "kafka"), CleanerBackoffMs: 30000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := strings.Join(b.Addrs(), ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pipeline.EnsureTopics(ctx, adm, pipeline.TopicOptions{Partitions: crashPartitions, Replication: 1}); err != nil {
		t.Fatal(err)
	}
	return crashKafka{brokers, cl, adm}
}

// produce writes records [from, to) to memo.events.
func (k crashKafka) produce(t testing.TB, from, to int) error {
	const chunk = 5000
	for lo := from; lo < to; lo += chunk {
		hi := min(lo+chunk, to)
		recs := make([]*kgo.Record, 0, hi-lo)
		for i := lo; i < hi; i++ {
			recs = append(recs, crashRecord(i))
		}
		if err := k.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// consumed is how many records of memo.events the eventlog group has
// committed, and how many the topic holds.
func (k crashKafka) consumed(t testing.TB) (committed, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, pipeline.TopicEvents)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	offs, err := k.adm.FetchOffsets(ctx, "memoflow-eventlog")
	if err != nil {
		return 0, end // the group does not exist yet
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == pipeline.TopicEvents && o.Err == nil && o.At > 0 {
			committed += o.At
		}
	})
	return committed, end
}

// sinkProc is one `memoflow stage eventlog` child process.
type sinkProc struct {
	cmd     *exec.Cmd
	metrics string // URL of its /metrics
	done    chan struct{}
	stderr  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSink starts `memoflow stage eventlog` against the broker and
// ClickHouse at chAddr, database db, and waits for its ready line.
func startSink(t *testing.T, brokers, chAddr, db string, batchRecords int) *sinkProc {
	t.Helper()
	args := []string{"stage", "eventlog",
		"--kafka-brokers", brokers, "--kafka-topic-partitions", strconv.Itoa(crashPartitions),
		"--clickhouse-addr", chAddr, "--clickhouse-database", db,
		"--http-addr", "127.0.0.1:0", "--var-dir", t.TempDir(), "--log-level", "warn",
		"--sink-batch-records", strconv.Itoa(batchRecords), "--sink-batch-wait", "300ms",
		// The shortest session a broker allows: a killed member's partitions
		// move after 6 s. The stable replica id lets the restarted process
		// fence its dead predecessor's transaction at once.
		"--session-timeout", "6s", "--replica-id", "crash",
		"--retry-min-backoff", "50ms", "--retry-max-backoff", "500ms",
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MEMOFLOW_TEST_CHILD=memoflow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &sinkProc{cmd: cmd, done: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "memoflow ready:") {
				for _, f := range strings.Fields(line) {
					if strings.HasPrefix(f, "metrics=") {
						ready <- strings.TrimPrefix(f, "metrics=")
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case p.metrics = <-ready:
	case <-p.done:
		t.Fatalf("memoflow stage eventlog exited at start (%v): %s", cmd.ProcessState, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("memoflow stage eventlog not ready within 60s: %s", p.stderr)
	}
	return p
}

func (p *sinkProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *sinkProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the child with SIGTERM and returns its exit code.
func (p *sinkProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("memoflow stage eventlog did not stop within 30s of SIGTERM")
		p.kill()
	}
	return p.cmd.ProcessState.ExitCode()
}

// metric sums the samples of name whose labels contain every given
// label="value" pair, from the child's /metrics.
func (p *sinkProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		t.Fatalf("scrape %s: %v", p.metrics, err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// chCount runs a query returning one UInt64, or an error.
func chCount(conn driver.Conn, q string) (uint64, error) {
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

func mustCount(t *testing.T, conn driver.Conn, q string) uint64 {
	t.Helper()
	n, err := chCount(conn, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// insertRunning reports whether an INSERT into db.events is executing on
// the server right now.
func insertRunning(conn driver.Conn, db string) bool {
	n, err := chCount(conn, "SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO "+db+".events %'")
	return err == nil && n > 0
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCaughtUp waits until the sink has committed all records.
func waitCaughtUp(t *testing.T, k crashKafka, p *sinkProc, records int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, end := k.consumed(t)
		if c == end && end == int64(records) {
			return
		}
		if !p.alive() || time.Now().After(deadline) {
			t.Fatalf("the sink did not catch up (alive=%v): %d of %d records committed; its log:\n%s", p.alive(), c, end, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkExact asserts that db holds exactly one row per event of records
// [0, records): counts and distinct lineages, distinct (message, tag), and
// the statistics view's totals equal to the raw table's. mvExact=false
// allows the statistics to miss rows (only after a ClickHouse server crash:
// DESIGN.md, "Known limit") but never to hold more.
func checkExact(t *testing.T, conn driver.Conn, db string, records int, mvExact bool) {
	t.Helper()
	want := uint64(records * crashEventsPerRecord)
	rows := mustCount(t, conn, "SELECT count() FROM "+db+".events")
	lineages := mustCount(t, conn, "SELECT uniqExact(kafka_partition, kafka_offset, event_index) FROM "+db+".events")
	steps := mustCount(t, conn, "SELECT uniqExact(message_uuid, tag) FROM "+db+".events")
	messages := mustCount(t, conn, "SELECT uniqExact(message_uuid) FROM "+db+".events_by_message")
	if rows != want || lineages != want || steps != want {
		t.Fatalf("events: %d rows, %d distinct lineages, %d distinct (message, tag); want %d of each", rows, lineages, steps, want)
	}
	// events_by_message is fed by a view too (known limit as below).
	switch {
	case messages == uint64(records):
	case mvExact || messages > uint64(records):
		t.Fatalf("events_by_message: %d messages, want %d", messages, records)
	default:
		t.Logf("events_by_message misses %d messages after a ClickHouse crash between a part and its view (DESIGN.md, known limit)", uint64(records)-messages)
	}
	// The view's sums per day and tag against the raw table's.
	q := fmt.Sprintf(`SELECT toUInt64(count()) FROM (
		SELECT day, tag, sum(events) AS e, sum(size_bytes) AS b FROM %[1]s.event_stats_daily GROUP BY day, tag) s
		ALL FULL OUTER JOIN (
		SELECT event_date AS day, tag, count() AS e, sum(size_bytes) AS b FROM %[1]s.events GROUP BY day, tag) r
		USING (day, tag) WHERE s.e != r.e OR s.b != r.b`, db)
	mvEvents := mustCount(t, conn, "SELECT sum(events) FROM "+db+".event_stats_daily")
	mvBytes := mustCount(t, conn, "SELECT sum(size_bytes) FROM "+db+".event_stats_daily")
	rawBytes := mustCount(t, conn, "SELECT sum(size_bytes) FROM "+db+".events")
	switch {
	case mvEvents > rows || mvBytes > rawBytes:
		t.Fatalf("statistics view counts more than the table: %d events / %d bytes vs %d / %d", mvEvents, mvBytes, rows, rawBytes)
	case mvEvents == rows && mvBytes == rawBytes:
		if bad := mustCount(t, conn, q); bad != 0 {
			t.Fatalf("statistics view: %d (day, tag) groups differ from the table", bad)
		}
	case mvExact:
		t.Fatalf("statistics view: %d events / %d bytes, table %d / %d", mvEvents, mvBytes, rows, rawBytes)
	default:
		t.Logf("statistics view misses %d events after a ClickHouse crash between a part and its view (DESIGN.md, known limit)", rows-mvEvents)
	}
}

// TestEventLogSIGKILL: the eventlog sink, a child process, is SIGKILLed
// several times while it inserts large batches and restarted each time;
// at the end ClickHouse holds exactly one row per event.
func TestEventLogSIGKILL(t *testing.T) {
	// 300,000 events; each restart waits about 6 s (the session timeout)
	// for the dead member to leave the group, which bounds the kills.
	records, kills := 100_000, 3
	if testing.Short() {
		records, kills = 20_000, 1
	}
	conn, chcfg := chtest.Conn(t)
	db := chtest.Database(t, conn)
	k := newCrashKafka(t)
	if err := k.produce(t, 0, records); err != nil {
		t.Fatal(err)
	}
	// Batches of records/6 records (50,000 rows at full size): a few
	// inserts, each long enough to be hit.
	batch := records / 6
	begin := time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	midInsert, ahead := 0, 0
	for kill := 1; kill <= kills; kill++ {
		before, _ := k.consumed(t)
		p := startSink(t, k.brokers, chcfg.Addr, db, batch)
		// Spread the kills over the run: kill i waits until (i-1)/(kills+1)
		// of the records are committed, then for an insert, then a random
		// 0-800 ms (within the insert, or just after its acknowledgement
		// and before the offset commit).
		progress := int64((kill - 1) * records / (kills + 1))
		var running bool
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			c, end := k.consumed(t)
			if c == end {
				break
			}
			if c >= progress && insertRunning(conn, db) {
				time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
				running = insertRunning(conn, db)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.kill()
		committed, end := k.consumed(t)
		rows := mustCount(t, conn, "SELECT count() FROM "+db+".events")
		if running {
			midInsert++
		}
		// Rows beyond the committed offsets: the insert (or part of it)
		// landed and the commit did not; the restart must find and skip them.
		if rows > uint64(committed)*crashEventsPerRecord {
			ahead++
		}
		t.Logf("%.1fs: SIGKILL %d: insert running=%v, committed %d -> %d of %d records, %d rows in ClickHouse",
			time.Since(begin).Seconds(), kill, running, before, committed, end, rows)
		if committed == end {
			t.Logf("the sink finished before kill %d; stopping the kills", kill)
			break
		}
	}
	p := startSink(t, k.brokers, chcfg.Addr, db, batch)
	waitCaughtUp(t, k, p, records)
	if code := p.stop(t); code != 0 {
		t.Errorf("memoflow stage eventlog exited %d after SIGTERM: %s", code, p.stderr)
	}
	checkExact(t, conn, db, records, true)
	t.Logf("%d events exactly once after %d SIGKILLs (%d during an insert, %d with rows written but not committed)",
		records*crashEventsPerRecord, kills, midInsert, ahead)
}

// privateClickHouse is a ClickHouse server of this test alone (the shared
// one on :9000 must stay up for other tests), run by scripts/clickhouse.sh
// on free ports with its data in a temporary directory.
type privateClickHouse struct {
	script string
	env    []string
	dir    string
	addr   string
}

func startPrivateClickHouse(t *testing.T) *privateClickHouse {
	t.Helper()
	bin := ""
	for _, b := range []string{"clickhouse", "clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no clickhouse server binary on PATH; CI must provide one (scripts/clickhouse.sh installs it)")
		}
		t.Skip("no clickhouse server binary to run a private server (install ClickHouse, or run scripts/clickhouse.sh start once)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ch := &privateClickHouse{script: filepath.Join(root, "scripts", "clickhouse.sh"), dir: filepath.Join(t.TempDir(), "clickhouse")}
	tcp, httpPort := freePort(t), freePort(t)
	ch.addr = "127.0.0.1:" + strconv.Itoa(tcp)
	env := []string{"CLICKHOUSE_TCP_PORT=" + strconv.Itoa(tcp), "CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(httpPort), "CLICKHOUSE_DIR=" + ch.dir}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CLICKHOUSE_") {
			env = append(env, e)
		}
	}
	ch.env = env
	ch.run(t, "start")
	t.Cleanup(func() { ch.run(t, "stop") })
	return ch
}

func (ch *privateClickHouse) run(t *testing.T, verb string) {
	t.Helper()
	cmd := exec.Command("bash", ch.script, verb)
	cmd.Env = ch.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clickhouse.sh %s: %v: %s", verb, err, out)
	}
}

// sigkill kills the server at once (no shutdown) and waits until it is gone.
func (ch *privateClickHouse) sigkill(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ch.dir, "server.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the killed ClickHouse to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEventLogClickHouseRestart: a private ClickHouse server is SIGKILLed
// and, later, stopped cleanly, while events keep arriving; the sink keeps
// retrying (transient errors), producers are not held up (events wait in
// Kafka), and after catch-up the event log is exact.
func TestEventLogClickHouseRestart(t *testing.T) {
	outage := 5 * time.Second
	if testing.Short() {
		outage = 2 * time.Second
	}
	ch := startPrivateClickHouse(t)
	cfg := chconn.DefaultConfig()
	cfg.Addr = ch.addr
	cfg.OpenTimeout = 10 * time.Second
	conn, err := chconn.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const db = "memoflow_crash"
	k := newCrashKafka(t)
	p := startSink(t, k.brokers, ch.addr, db, 10_000)

	// Events keep arriving all along, through both outages, until
	// stopProducing: 400 records every 200 ms.
	var produced atomic.Int64
	prodErr := make(chan error, 1)
	stopProducing := make(chan struct{})
	go func() {
		const chunk = 400
		for i := 0; ; i += chunk {
			select {
			case <-stopProducing:
				prodErr <- nil
				return
			default:
			}
			if err := k.produce(t, i, i+chunk); err != nil {
				prodErr <- err
				return
			}
			produced.Store(int64(i + chunk))
			time.Sleep(200 * time.Millisecond)
		}
	}()

	begin := time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	killedMidInsert := false
	outages := []string{"SIGKILL", "stop"}
	for _, how := range outages {
		// Mid-stream: rows are arriving and more are on their way.
		n, _ := chCount(conn, "SELECT count() FROM "+db+".events")
		waitFor(t, 30*time.Second, "new rows before the outage", func() bool {
			m, err := chCount(conn, "SELECT count() FROM "+db+".events")
			return err == nil && m > n
		})
		if how == "SIGKILL" {
			// Aim at an insert in flight, at a random point of it.
			until := time.Now().Add(5 * time.Second)
			for !insertRunning(conn, db) && time.Now().Before(until) {
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			killedMidInsert = insertRunning(conn, db)
			ch.sigkill(t)
		} else {
			ch.run(t, "stop")
		}
		down := produced.Load()
		time.Sleep(outage)
		// While ClickHouse was down the producers went on and the sink
		// stayed up, retrying.
		if got := produced.Load(); got <= down {
			t.Fatalf("no events produced during the %s outage (%d before, %d after)", how, down, got)
		}
		if !p.alive() {
			t.Fatalf("the sink exited while ClickHouse was down (%s): %s", how, p.stderr)
		}
		committed, _ := k.consumed(t)
		t.Logf("%.1fs: ClickHouse %s for %s: %d records produced meanwhile, %d committed", time.Since(begin).Seconds(), how, outage, produced.Load()-down, committed)
		ch.run(t, "start")
	}
	time.Sleep(time.Second) // a little more after the last restart
	close(stopProducing)
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	records := int(produced.Load())
	t.Logf("%.1fs: %d records produced; catching up", time.Since(begin).Seconds(), records)
	waitCaughtUp(t, k, p, records)
	t.Logf("%.1fs: caught up", time.Since(begin).Seconds())
	if os.Getenv("CRASH_TEST_LOG") != "" {
		t.Logf("sink log:\n%s", p.stderr)
	}
	transient := p.metric(t, "memoflow_eventlog_insert_errors_total", `class="transient"`)
	if transient == 0 {
		t.Errorf("no transient insert errors counted; the outages were not seen by the sink")
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("memoflow stage eventlog exited %d after SIGTERM: %s", code, p.stderr)
	}
	// A server SIGKILLed between a part and its views loses the views'
	// rows (DESIGN.md, known limit): the views may fall short here, never
	// exceed the table. (An insert can start in the instant between the
	// look at system.processes and the kill, so even "no insert in
	// flight" does not make them exact. TestEventLogSIGKILL holds them
	// exact when only the sink dies.)
	checkExact(t, conn, db, records, false)
	t.Logf("%d events exactly once after a ClickHouse SIGKILL (insert in flight: %v) and a stop; %.0f transient insert errors retried",
		records*crashEventsPerRecord, killedMidInsert, transient)
}
