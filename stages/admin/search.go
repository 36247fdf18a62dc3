package admin

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/memoflow/memoflow/schemas/registry"
)

// SearchQuery selects contact points. Every given criterion must hold.
type SearchQuery struct {
	// Org limits the search to one organisation ("" for all: operators).
	Org string
	// Text is split into words; each word must occur, case-insensitively,
	// in the point's name or one of its keywords (NgDP: several words
	// narrow the search), or equal one of its codes.
	Text string
	// KLE and FORM match a code equal to the value or below it in the
	// code's hierarchy ("01.02" finds "01.02.03"); EAN and SOR match
	// exactly.
	KLE, FORM, EAN, SOR string
	// VisibleTo keeps the points visible to every audience in it (0: no
	// filter; administrators see their hidden points too).
	VisibleTo  registry.Visibility
	Page, Size int
}

// doc is a point prepared for search: lower-cased text, computed once per
// entity. Entities are immutable (a change replaces the pointer), so the
// pointer is the cache key and a changed point is a new entry.
type doc struct {
	p     *registry.ContactPoint
	text  string // lower(name) \x00 lower(keyword) ...
	codes []string
	sort  string // lower(name), for ordering
}

// searcher answers contact-point searches over a Reader.
type searcher struct {
	r  Reader
	mu sync.Mutex
	// cache maps live points to their docs; it is pruned when it holds
	// twice as many entries as the last scan saw.
	cache map[*registry.ContactPoint]*doc
}

func newSearcher(r Reader) *searcher {
	return &searcher{r: r, cache: map[*registry.ContactPoint]*doc{}}
}

func (s *searcher) docFor(p *registry.ContactPoint) *doc {
	if d, ok := s.cache[p]; ok {
		return d
	}
	var b strings.Builder
	b.WriteString(strings.ToLower(p.Name))
	for _, k := range p.Keywords {
		b.WriteByte(0)
		b.WriteString(strings.ToLower(k))
	}
	d := &doc{p: p, text: b.String(), sort: strings.ToLower(p.Name)}
	for _, set := range [][]string{p.KLE, p.FORM, p.EAN, p.SOR} {
		for _, c := range set {
			d.codes = append(d.codes, strings.ToLower(c))
		}
	}
	s.cache[p] = d
	return d
}

// Search returns the page of matching points, ordered by name (then ID),
// and the number of matches.
func (s *searcher) Search(q SearchQuery) ([]*registry.ContactPoint, int) {
	words := strings.Fields(strings.ToLower(q.Text))
	kle, form := strings.ToLower(q.KLE), strings.ToLower(q.FORM)
	var hits []*doc
	seen := 0
	s.mu.Lock()
	s.r.Each(registry.KindContactPoint, q.Org, func(e registry.Entity) bool {
		p := e.(*registry.ContactPoint)
		seen++
		if p.Visibility&q.VisibleTo != q.VisibleTo {
			return true
		}
		if kle != "" && !slices.ContainsFunc(p.KLE, func(c string) bool { return codeUnder(strings.ToLower(c), kle) }) {
			return true
		}
		if form != "" && !slices.ContainsFunc(p.FORM, func(c string) bool { return codeUnder(strings.ToLower(c), form) }) {
			return true
		}
		if q.EAN != "" && !slices.Contains(p.EAN, q.EAN) {
			return true
		}
		if q.SOR != "" && !slices.Contains(p.SOR, q.SOR) {
			return true
		}
		d := s.docFor(p)
		for _, w := range words {
			if !strings.Contains(d.text, w) && !slices.Contains(d.codes, w) {
				return true
			}
		}
		hits = append(hits, d)
		return true
	})
	if len(s.cache) > 2*seen+1024 {
		// Stale entries (changed or deleted points) go; the live ones are
		// rebuilt on the next search that needs them.
		clear(s.cache)
	}
	s.mu.Unlock()
	total := len(hits)
	from := min(q.Page*q.Size, total)
	to := min(from+q.Size, total)
	hits = smallest(hits, to)
	out := make([]*registry.ContactPoint, 0, to-from)
	for _, d := range hits[from:to] {
		out = append(out, d.p)
	}
	return out, total
}

func docLess(a, b *doc) int { return cmp.Or(cmp.Compare(a.sort, b.sort), cmp.Compare(a.p.ID, b.p.ID)) }

// smallest returns the k first docs in order. A page near the start of a
// broad search needs a few of thousands of hits: a bounded max-heap costs
// n·log k instead of a full sort's n·log n.
func smallest(ds []*doc, k int) []*doc {
	if k >= len(ds)/4 {
		slices.SortFunc(ds, docLess)
		return ds[:k]
	}
	h := make([]*doc, 0, k)
	down := func(i int) {
		for {
			l, big := 2*i+1, i
			if l < len(h) && docLess(h[l], h[big]) > 0 {
				big = l
			}
			if r := l + 1; r < len(h) && docLess(h[r], h[big]) > 0 {
				big = r
			}
			if big == i {
				return
			}
			h[i], h[big] = h[big], h[i]
			i = big
		}
	}
	for _, d := range ds {
		if len(h) < k {
			h = append(h, d)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if docLess(h[i], h[p]) <= 0 {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			continue
		}
		if k > 0 && docLess(d, h[0]) < 0 {
			h[0] = d
			down(0)
		}
	}
	slices.SortFunc(h, docLess)
	return h
}

// codeUnder: c equals prefix or lies below it in a dotted hierarchy.
func codeUnder(c, prefix string) bool {
	return c == prefix || (strings.HasPrefix(c, prefix) && c[len(prefix)] == '.')
}
