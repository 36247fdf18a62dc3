package admin

import (
	"fmt"
	"slices"
	"testing"

	"github.com/memoflow/memoflow/schemas/registry"
)

func searchRegistry() *memRegistry {
	r := baseRegistry()
	for _, p := range []*registry.ContactPoint{
		{ID: "pas", Org: orgA, Name: "Pas og Kørekort", Keywords: []string{"Rejse", "ID-kort"}, KLE: []string{"05.04.02"}, Visibility: registry.VisibleAll},
		{ID: "skat", Org: orgA, Name: "Ejendomsskat", Keywords: []string{"Grundskyld", "BOLIG"}, FORM: []string{"G01.02.03"}, Visibility: registry.VisibleCitizens | registry.VisibleCompanies},
		{ID: "affald", Org: orgA, Name: "Affald og genbrug", Keywords: []string{"Storskrald"}, EAN: []string{"5798000000001"}, Visibility: registry.VisibleCitizens},
		{ID: "intern", Org: orgA, Name: "Intern bolig-postkasse", SOR: []string{"123456"}, Visibility: 0},
		{ID: "æble", Org: orgA, Name: "ÆBLEHAVEN Børnehave", Visibility: registry.VisibleCitizens},
		{ID: "bolig-b", Org: orgB, Name: "Boligstøtte", Visibility: registry.VisibleAll},
	} {
		r.m[p.Key()] = p
	}
	return r
}

func TestSearch(t *testing.T) {
	s := newSearcher(searchRegistry())
	for _, tc := range []struct {
		name string
		q    SearchQuery
		want []string // ids, in order
	}{
		{"keyword, any case", SearchQuery{Org: orgA, Text: "rejse"}, []string{"pas"}},
		{"name counts as a keyword", SearchQuery{Org: orgA, Text: "KØREKORT"}, []string{"pas"}},
		{"part of a word", SearchQuery{Org: orgA, Text: "skat"}, []string{"skat"}},
		{"several words narrow", SearchQuery{Org: orgA, Text: "bolig grundskyld"}, []string{"skat"}},
		{"several words, no point has both", SearchQuery{Org: orgA, Text: "bolig storskrald"}, nil},
		{"a word in the name of one and a keyword of another", SearchQuery{Org: orgA, Text: "bolig"}, []string{"skat", "intern"}},
		{"Danish letters fold", SearchQuery{Org: orgA, Text: "æblehaven børnehave"}, []string{"æble"}},
		{"KLE code as text", SearchQuery{Org: orgA, Text: "05.04.02"}, []string{"pas"}},
		{"KLE prefix", SearchQuery{Org: orgA, KLE: "05.04"}, []string{"pas"}},
		{"KLE prefix is per level", SearchQuery{Org: orgA, KLE: "05.0"}, nil},
		{"FORM, any case", SearchQuery{Org: orgA, FORM: "g01.02"}, []string{"skat"}},
		{"EAN exact", SearchQuery{Org: orgA, EAN: "5798000000001"}, []string{"affald"}},
		{"EAN partial", SearchQuery{Org: orgA, EAN: "5798"}, nil},
		{"SOR", SearchQuery{Org: orgA, SOR: "123456"}, []string{"intern"}},
		{"visible to companies", SearchQuery{Org: orgA, VisibleTo: registry.VisibleCompanies}, []string{"skat", "pas"}},
		{"visible to citizens and companies", SearchQuery{Org: orgA, VisibleTo: registry.VisibleCompanies | registry.VisibleCitizens, Text: "bolig"}, []string{"skat"}},
		{"hidden points are not found by an audience", SearchQuery{Org: orgA, VisibleTo: registry.VisibleCitizens, Text: "intern"}, nil},
		// Æ, Ø, Å sort after Z, as in the Danish alphabet.
		{"every point of the organisation, by name", SearchQuery{Org: orgA}, []string{"affald", "skat", "intern", "pas", "æble"}},
		{"all organisations", SearchQuery{Text: "bolig"}, []string{"bolig-b", "skat", "intern"}},
		{"another organisation's point is not the caller's", SearchQuery{Org: orgA, Text: "boligstøtte"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Size = 100
			got, total := s.Search(tc.q)
			var ids []string
			for _, p := range got {
				ids = append(ids, p.ID)
			}
			if !slices.Equal(ids, tc.want) || total != len(tc.want) {
				t.Fatalf("got %v (total %d), want %v", ids, total, tc.want)
			}
		})
	}
}

func TestSearchPaging(t *testing.T) {
	r := baseRegistry()
	for i := range 45 {
		p := &registry.ContactPoint{ID: fmt.Sprintf("p%02d", i), Org: orgA, Name: fmt.Sprintf("Punkt %02d", 44-i)}
		r.m[p.Key()] = p
	}
	s := newSearcher(r)
	var all []string
	for page := 0; ; page++ {
		got, total := s.Search(SearchQuery{Org: orgA, Page: page, Size: 20})
		if total != 45 {
			t.Fatalf("total %d", total)
		}
		if len(got) == 0 {
			break
		}
		for _, p := range got {
			all = append(all, p.ID)
		}
	}
	if len(all) != 45 || all[0] != "p44" || all[44] != "p00" {
		t.Fatalf("pages %v", all)
	}
	// A changed point is found by its new name, not its old one.
	r.m["cp/p00"] = &registry.ContactPoint{ID: "p00", Org: orgA, Name: "Omdøbt"}
	if got, _ := s.Search(SearchQuery{Org: orgA, Text: "omdøbt", Size: 10}); len(got) != 1 {
		t.Fatalf("renamed point not found: %v", got)
	}
	if got, _ := s.Search(SearchQuery{Org: orgA, Text: "punkt 44", Size: 10}); len(got) != 0 {
		t.Fatalf("old name still found: %v", got)
	}
}

// TestSmallest: the bounded heap gives the same pages as a full sort.
func TestSmallest(t *testing.T) {
	var all []*doc
	for i := range 1000 {
		all = append(all, &doc{p: &registry.ContactPoint{ID: fmt.Sprint(i)}, sort: fmt.Sprintf("%03d", (i*7919)%1000/2)})
	}
	want := slices.Clone(all)
	slices.SortFunc(want, docLess)
	for _, k := range []int{0, 1, 20, 240, 999, 1000} {
		got := smallest(slices.Clone(all), k)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("k=%d: differs from a full sort", k)
		}
	}
}
