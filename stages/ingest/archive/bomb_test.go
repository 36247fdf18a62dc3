package archive

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ulikunitz/xz/lzma"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// bomb streams an LZMA bomb of total zero bytes through a pipe, encoding
// only as fast as the reader consumes it: the whole 2 GB bomb compresses to
// a few hundred KB (64 MB of zeros become 9.5 KB), but a reader that stops
// early never makes the test pay for encoding the rest. Closing the
// returned reader stops the encoder; wait waits for it.
func bomb(kind string, total int64) (r io.ReadCloser, wait func()) {
	pr, pw := io.Pipe()
	// The encoders are made here, not in the goroutine, so that their
	// ~45 MB of tables exist before the test measures the reader's heap.
	var w *Writer
	var lw *lzma.Writer
	if kind == "raw zeros" {
		var err error
		if lw, err = (lzma.WriterConfig{EOSMarker: true}).NewWriter(pw); err != nil {
			panic(err)
		}
	} else {
		w = NewWriter(pw, true)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var err error
		switch kind {
		case "1 MB files": // passes every per-entry check
			for i := 0; total > 0 && err == nil; i++ {
				n := min(total, 1<<20)
				err = w.AddReader(fmt.Sprintf("%06d.xml", i), n, zeros{})
				total -= n
			}
			if err == nil {
				err = w.Close()
			}
		case "one file":
			if err = w.AddReader("bomb.xml", total, zeros{}); err == nil {
				err = w.Close()
			}
		case "raw zeros": // not even tar: tar sees an end-of-archive marker
			if _, err = io.CopyN(lw, zeros{}, total); err == nil {
				err = lw.Close()
			}
		}
		pw.CloseWithError(err)
	})
	return pr, wg.Wait
}

// heapPeak runs f and returns the peak heap in use while it ran, sampled
// every few milliseconds, and the bytes allocated in all (which bound the
// peak from above, whatever the sampling missed).
func heapPeak(f func()) (peak, allocated uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, baseTotal := ms.HeapAlloc, ms.TotalAlloc
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapAlloc)
	return peak - min(peak, base), ms.TotalAlloc - baseTotal
}

func TestLZMABomb(t *testing.T) {
	const gb2 = 2 << 30
	const memLimit = 64 << 20
	tests := []struct {
		kind  string
		total int64
		lim   Limits
		code  Code
	}{
		{"1 MB files", gb2, Limits{}, CodeRatio},
		{"raw zeros", gb2, Limits{}, CodeRatio},
		{"one file", gb2, Limits{}, CodeEntryTooLarge}, // refused from its tar header
		// With the ratio check off, the total limit still stops it, after
		// 99.5 MB (this case costs encoding ~100 MB of zeros, ~1 s).
		{"1 MB files", gb2, Limits{MaxRatio: -1}, CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s ratio=%v", tc.kind, tc.lim.MaxRatio), func(t *testing.T) {
			if tc.code == CodeTooLarge && testing.Short() {
				t.Skip("encodes 100 MB of zeros")
			}
			in, wait := bomb(tc.kind, tc.total)
			var err error
			var files int
			var dec, comp int64
			start := time.Now()
			peak, allocated := heapPeak(func() {
				r := NewReader(in, tc.lim, true)
				for {
					var e Entry
					if e, err = r.Next(); err != nil {
						break
					}
					if _, err = io.Copy(io.Discard, e.Body); err != nil {
						break
					}
				}
				files, dec, comp = r.Stats()
			})
			elapsed := time.Since(start)
			in.Close()
			wait()
			t.Logf("%s after %v: %d files, %d MB decompressed from %d KB; heap peak %d MB above the encoder's, %d MB allocated",
				CodeOf(err), elapsed.Round(time.Millisecond), files, dec>>20, comp>>10, peak>>20, allocated>>20)
			if CodeOf(err) != tc.code {
				t.Fatalf("%v, want %s", err, tc.code)
			}
			if peak > memLimit {
				t.Errorf("heap peak %d MB, limit %d MB", peak>>20, memLimit>>20)
			}
			if tc.code == CodeRatio && dec > 32<<20 {
				t.Errorf("ratio check stopped the bomb only after %d MB", dec>>20)
			}
			if elapsed > 20*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}
