package registry

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestGenerate(t *testing.T) {
	cfg := GenConfig{Seed: 7, Citizens: 200_000, Companies: 20_000, Authorities: 10, PointsPerAuthority: 25, MailboxProviders: 3}
	v := NewMemView(WithLogger(quiet()))
	w := NewWriter(nil, v) // Check only: the cross-entity rules hold for generated data
	cprs := map[string]bool{}
	cvrs := map[string]bool{}
	var buf bytes.Buffer
	cw, err := NewChangeWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n := 0
	err = Generate(cfg, func(c Change) error {
		n++
		if n%50 == 0 || c.Kind() != KindCitizen { // checking all 200k would be slow and prove little more
			if err := w.Check(c); err != nil {
				return err
			}
		}
		switch e := c.Entity.(type) {
		case *Citizen:
			if cprs[e.CPR] {
				t.Fatalf("CPR %s twice", e.CPR)
			}
			cprs[e.CPR] = true
		case *Org:
			if !ValidCVRModulus11(e.CVR) {
				t.Fatalf("CVR %s fails modulus 11", e.CVR)
			}
			if e.Type == OrgAuthority && cvrs[e.CVR] {
				t.Fatalf("CVR %s twice", e.CVR)
			}
			cvrs[e.CVR] = true
		case *Company:
			if !ValidCVRModulus11(e.CVR) {
				t.Fatalf("CVR %s fails modulus 11", e.CVR)
			}
		}
		h.Write(c.AppendValue(nil))
		v.Apply(c)
		return cw.Write(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
	st := v.Stats()
	if st.Citizens != 200_000 || st.Companies != 20_000 || st.ContactPoints != 250 || st.Orgs < 10 || v.SMSProvider() == nil || v.PrintProvider() == nil {
		t.Fatalf("stats %+v", st)
	}
	if d := v.DefaultSystem(firstAuthority(v)); d == nil {
		t.Fatal("authority without default system")
	}
	// Deterministic by seed.
	h2 := sha256.New()
	cfg2 := cfg
	cfg2.Citizens = 200_000
	_ = Generate(cfg2, func(c Change) error { h2.Write(c.AppendValue(nil)); return nil })
	if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Fatal("same seed, different registry")
	}
	cfg2.Seed = 8
	h3 := sha256.New()
	_ = Generate(cfg2, func(c Change) error { h3.Write(c.AppendValue(nil)); return nil })
	if bytes.Equal(h.Sum(nil), h3.Sum(nil)) {
		t.Fatal("seed ignored")
	}
	// The change file replays into the same view.
	v2 := NewMemView(WithLogger(quiet()))
	m := 0
	err = ReadChangeFile(&buf, func(k, val []byte) error {
		m++
		v2.mu.Lock()
		defer v2.mu.Unlock()
		return v2.applyRecordLocked(&kgo.Record{Key: k, Value: val})
	})
	if err != nil || m != cw.Count() || v2.Stats() != st {
		t.Fatalf("replay: %v, %d of %d, %+v vs %+v", err, m, cw.Count(), v2.Stats(), st)
	}
	if err := ReadChangeFile(bytes.NewReader([]byte("nope")), func(k, v []byte) error { return nil }); err == nil {
		t.Fatal("accepted a non-change file")
	}
}

func firstAuthority(v *View) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for cvr, o := range v.orgs {
		if o.Type == OrgAuthority {
			return cvr
		}
	}
	return ""
}
