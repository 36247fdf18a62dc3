package registry

import (
	"slices"
	"testing"
	"time"
)

func TestViewEachAndGet(t *testing.T) {
	v := NewMemView(WithLogger(quiet()))
	now := time.Now()
	for _, e := range baseEntities() {
		v.Apply(NewChange(e, "test", now))
	}
	v.Apply(NewChange(&ContactPoint{ID: "other", Org: "87654321", Name: "x"}, "test", now))
	ids := func(kind Kind, org string) []string {
		var out []string
		v.Each(kind, org, func(e Entity) bool { out = append(out, e.Key()); return true })
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		kind Kind
		org  string
		want []string
	}{
		{KindContactPoint, "12345678", []string{"cp/cp1"}},
		{KindContactPoint, "", []string{"cp/cp1", "cp/other"}},
		{KindContactGroup, "12345678", []string{"cg/g1"}},
		{KindSystem, "12345678", []string{"sys/cvrpost", "sys/dflt"}},
		{KindSystem, "", []string{"sys/cvrpost", "sys/dflt", "sys/eboks", "sys/print", "sys/sms"}},
		{KindOrg, "87654321", []string{"org/87654321"}},
		{KindLegacyMailbox, "12345678", []string{"leg/12345678/BORGER/"}},
		{KindCitizen, "", nil}, // not listed: millions
	} {
		if got := ids(tc.kind, tc.org); !slices.Equal(got, tc.want) {
			t.Errorf("Each(%v, %q) = %v, want %v", tc.kind, tc.org, got, tc.want)
		}
	}
	n := 0
	v.Each(KindSystem, "", func(Entity) bool { n++; return false })
	if n != 1 {
		t.Errorf("Each went on after fn returned false: %d calls", n)
	}
	for _, key := range []string{"org/12345678", "sys/eboks", "cg/g1", "cp/cp1", "leg/12345678/BORGER/", "cit/0101011234", "com/87654321"} {
		if e, ok := v.Get(key); !ok || e.Key() != key {
			t.Errorf("Get(%q) = %v, %v", key, e, ok)
		}
	}
	if e, ok := v.Get("cp/nope"); ok || e != nil {
		t.Errorf("Get of a missing key = %v, %v", e, ok)
	}
}
