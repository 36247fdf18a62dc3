package bench

import (
	"math"
	"sort"
)

// Quantile returns the q-quantile (0 <= q <= 1) of sorted values by the
// nearest-rank method: the smallest value with at least q of the values at
// or below it. It reports a value that occurred, never an interpolation,
// so a p99 of 1000 latencies is the 990th one. Empty input gives 0.
func Quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return sorted[0]
	}
	if q >= 1 {
		return sorted[n-1]
	}
	rank := int(math.Ceil(q*float64(n))) - 1
	return sorted[max(rank, 0)]
}

// Latency is the summary of a latency sample in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summarize sorts ms in place and summarises it.
func Summarize(ms []float64) Latency {
	sort.Float64s(ms)
	l := Latency{Count: len(ms)}
	if len(ms) == 0 {
		return l
	}
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	l.P50, l.P95, l.P99 = Quantile(ms, 0.5), Quantile(ms, 0.95), Quantile(ms, 0.99)
	l.Max, l.Mean = ms[len(ms)-1], sum/float64(len(ms))
	return l
}

// Bucket is one bar of a histogram: values in [Lo, Hi).
type Bucket struct {
	Lo    float64 `json:"lo_ms"`
	Hi    float64 `json:"hi_ms"`
	Count int     `json:"count"`
}

// LogHistogram buckets sorted positive values on a log scale with perDecade
// buckets per power of ten, from the smallest to the largest value, so a
// latency tail three decades above the median stays readable. Values <= 0
// (clock skew between acceptance and arrival) count in the first bucket.
func LogHistogram(sorted []float64, perDecade int) []Bucket {
	if len(sorted) == 0 {
		return nil
	}
	if perDecade <= 0 {
		perDecade = 10
	}
	lo := math.Max(sorted[0], 0.1)
	hi := math.Max(sorted[len(sorted)-1], lo)
	start := math.Floor(math.Log10(lo) * float64(perDecade))
	end := math.Floor(math.Log10(hi)*float64(perDecade)) + 1
	out := make([]Bucket, int(end-start))
	for i := range out {
		out[i].Lo = math.Pow(10, (start+float64(i))/float64(perDecade))
		out[i].Hi = math.Pow(10, (start+float64(i)+1)/float64(perDecade))
	}
	for _, v := range sorted {
		i := 0
		if v > 0 {
			i = int(math.Floor(math.Log10(v)*float64(perDecade)) - start)
		}
		out[min(max(i, 0), len(out)-1)].Count++
	}
	return out
}
