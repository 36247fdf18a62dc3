package deliver

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"testing"
	"time"
)

// BenchmarkJournalMemory measures what the push journal holds per
// acknowledged push (the map and the eviction order), the figure behind
// --deliver-journal-window's memory note: go test -run '^$' -bench
// JournalMemory ./stages/deliver/
func BenchmarkJournalMemory(b *testing.B) {
	const n = 1 << 20
	uuids := make([]string, n)
	for i := range uuids {
		uuids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	at := time.Now()
	for b.Loop() {
		j := &Journal{window: time.Hour, seed: maphash.MakeSeed(), m: newMetrics(nil).journal, acked: map[journalKey]int64{}}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, u := range uuids {
			j.remember(j.key(u, 0), at.UnixMilli())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(j)
	}
}
