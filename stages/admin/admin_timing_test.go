package admin

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/registry"
)

// benchRegistry is a real View and Writer on kfake, seeded with two
// authorities and their systems.
func benchRegistry(b *testing.B) (*registry.View, *registry.Writer, *kgo.Client) {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "memo.registry", "memo.events"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(append(opts, kgo.ProducerLinger(time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(prod.Close)
	ctx := context.Background()
	if err := registry.NewWriter(prod, nil, registry.WithoutEvents()).Put(ctx, "seed", seedEntities()...); err != nil {
		b.Fatal(err)
	}
	v, err := registry.NewView(ctx, opts, registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	if err := v.WaitCaughtUp(ctx); err != nil {
		b.Fatal(err)
	}
	return v, registry.NewWriter(prod, v), prod
}

// fullSheet is the NgDP maximum: 2000 groups (a three-level tree) and
// 2000 points with keywords, codes, info fields and a system. round makes
// the names differ between rounds so every round writes every row.
func fullSheet(b *testing.B, round int) []byte {
	groups := [][]string{groupHeader}
	points := [][]string{pointHeader}
	for i := range 2000 {
		parent := ""
		if i >= 20 {
			parent = fmt.Sprintf("bg%04d", i/20-1+0)
			if i < 420 {
				parent = fmt.Sprintf("bg%04d", i%20)
			} else {
				parent = fmt.Sprintf("bg%04d", 20+i%400)
			}
		}
		groups = append(groups, []string{fmt.Sprintf("bg%04d", i), parent, fmt.Sprintf("Gruppe %d r%d", i, round), "borger;service", "Ja", "Ja", "Nej"})
		points = append(points, point(fmt.Sprintf("bp%04d", i), fmt.Sprintf("bg%04d", i), fmt.Sprintf("Kontaktpunkt %d r%d", i, round),
			"Søgeord", "pas; kørekort; rejse", "KLE", "05.04.02;05.04", "FORM", "G01.02", "EAN/GLN", "5798000000001", "SOR", "123456",
			"Synlig for borgere", "Ja", "Informationsfelt 1 titel", "Barnets CPR-nummer", "Informationsfelt 1 tekst", "Skriv barnets CPR-nummer",
			"Modtagersystem", "sysA"))
	}
	return xlsx(b, map[string][][]string{SheetGroups: groups, SheetPoints: points})
}

// BenchmarkImport2000x2000 imports a full sheet (2000 groups + 2000
// points) into a real registry on kfake: read and validate every row,
// then write 4000 changes and their events and wait until the View has
// them. The baseline is the registry Writer alone writing the same 4000
// entities (its own checks, produce, acks, view catch-up), so
// import/writer is what the sheet costs on top of the write.
//
//	go test -run XXX -bench Import2000 -benchtime 3x ./stages/admin/
func BenchmarkImport2000x2000(b *testing.B) {
	v, w, _ := benchRegistry(b)
	im, err := NewImporter(v, w, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var validate, imp, base time.Duration
	round := 0
	for b.Loop() {
		round++
		data := fullSheet(b, round)
		t0 := time.Now()
		res, err := im.Validate(orgA, data, "")
		if err != nil {
			b.Fatal(err)
		}
		validate += time.Since(t0)
		t0 = time.Now()
		res, err = im.Import(ctx, orgA, "bench", data, "", false)
		if err != nil {
			b.Fatal(err)
		}
		imp += time.Since(t0)
		if res.Written != 4000 {
			b.Fatalf("wrote %d", res.Written)
		}
		// The baseline writes the same entities renamed again, so it is a
		// real write of 4000 changed entities too.
		cs := make([]registry.Change, len(res.changes))
		now := time.Now()
		for i, c := range res.changes {
			switch e := c.Entity.(type) {
			case *registry.ContactGroup:
				g := *e
				g.Name += " base"
				cs[i] = registry.NewChange(&g, "bench", now)
			case *registry.ContactPoint:
				p := *e
				p.Name += " base"
				cs[i] = registry.NewChange(&p, "bench", now)
			}
		}
		t0 = time.Now()
		if err := w.Write(ctx, cs...); err != nil {
			b.Fatal(err)
		}
		base += time.Since(t0)
	}
	n := float64(round)
	b.ReportMetric(validate.Seconds()*1000/n, "validate-ms")
	b.ReportMetric(imp.Seconds()*1000/n, "import-ms")
	b.ReportMetric(base.Seconds()*1000/n, "writer-ms")
	b.ReportMetric(imp.Seconds()/base.Seconds(), "import/writer")
}

// BenchmarkSearch10k searches 10,000 contact points of one authority
// (each with a name, 3 keywords and codes) in the real View. The baseline
// is the View's own listing of the organisation's points (View.Each), the
// floor any search over the View pays; search/each is what matching,
// sorting and paging add.
//
//	go test -run XXX -bench Search10k -benchtime 2s ./stages/admin/
func BenchmarkSearch10k(b *testing.B) {
	v, w, _ := benchRegistry(b)
	ctx := context.Background()
	words := []string{"pas", "bolig", "skat", "affald", "skole", "børn", "sundhed", "job", "ældre", "byg"}
	es := make([]registry.Entity, 0, 10000)
	for i := range 10000 {
		es = append(es, &registry.ContactPoint{ID: fmt.Sprintf("sp%05d", i), Org: orgA, Name: fmt.Sprintf("%s og %s %d", words[i%10], words[(i/10)%10], i),
			Keywords: []string{words[(i+3)%10], words[(i+7)%10], fmt.Sprintf("emne%d", i%500)}, KLE: []string{fmt.Sprintf("%02d.%02d", i%100, i%37)},
			Visibility: registry.Visibility(1 + i%7)})
	}
	if err := w.Put(ctx, "bench", es...); err != nil {
		b.Fatal(err)
	}
	s := newSearcher(v)
	queries := []SearchQuery{
		{Org: orgA, Text: "bolig", Size: 20},
		{Org: orgA, Text: "Pas SKOLE", Size: 20},
		{Org: orgA, Text: "emne42", VisibleTo: registry.VisibleCitizens, Size: 20},
		{Org: orgA, KLE: "05", Size: 20},
		{Org: orgA, Size: 20, Page: 10},
	}
	s.Search(queries[0]) // warm the per-point cache, as a running API has
	var searchT, eachT time.Duration
	n := 0
	for b.Loop() {
		q := queries[n%len(queries)]
		t0 := time.Now()
		_, total := s.Search(q)
		searchT += time.Since(t0)
		if total == 0 {
			b.Fatalf("query %+v found nothing", q)
		}
		t0 = time.Now()
		cnt := 0
		v.Each(registry.KindContactPoint, orgA, func(registry.Entity) bool { cnt++; return true })
		eachT += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(searchT.Microseconds())/float64(n), "search-µs")
	b.ReportMetric(float64(eachT.Microseconds())/float64(n), "each-µs")
	b.ReportMetric(searchT.Seconds()/eachT.Seconds(), "search/each")
}

// BenchmarkSystemsImport1000 imports a supplier's systems workbook of 1000
// SFTP standard systems (host keys parsed, the heaviest validation) into a
// real registry on kfake, against the registry Writer alone writing the
// same 1000 entities in the same run.
//
//	go test -run XXX -bench SystemsImport -benchtime 3x ./stages/admin/
func BenchmarkSystemsImport1000(b *testing.B) {
	v, w, _ := benchRegistry(b)
	im, err := NewImporter(v, w, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var imp, base time.Duration
	round := 0
	for b.Loop() {
		round++
		rows := [][]string{nil}
		for _, c := range StandardColumns {
			rows[0] = append(rows[0], c.Header)
		}
		for i := range 1000 {
			cells := map[string]string{"ID": fmt.Sprintf("std-%04d", i), "Navn": fmt.Sprintf("Arkiv %d r%d", i, round), "Protokol": "SFTP",
				"Endpoint": fmt.Sprintf("sftp://sftp%d.supplier.example:2222", i), "SFTP-bruger": "memoflow", "SSH-værtsnøgle": keys().host1 + "\n" + keys().host2,
				"SFTP-mappe": "/inbox", "Kvitteringsmappe": "/receipts", "MeMo-version": "1.2", "Aktiv": "Ja"}
			row := make([]string, len(rows[0]))
			for j, h := range rows[0] {
				row[j] = cells[h]
			}
			rows = append(rows, row)
		}
		data := xlsx(b, map[string][][]string{SheetStandard: rows})
		t0 := time.Now()
		res, err := im.ImportSystems(ctx, supplierOrg, "bench", data, "", false, SystemsAccess{Standard: true})
		if err != nil {
			b.Fatal(err)
		}
		imp += time.Since(t0)
		if res.Written != 1000 {
			b.Fatalf("wrote %d", res.Written)
		}
		cs := make([]registry.Change, len(res.changes))
		now := time.Now()
		for i, c := range res.changes {
			s := *c.Entity.(*registry.System)
			s.Name += " base"
			cs[i] = registry.NewChange(&s, "bench", now)
		}
		t0 = time.Now()
		if err := w.Write(ctx, cs...); err != nil {
			b.Fatal(err)
		}
		base += time.Since(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(imp.Milliseconds())/n, "import-ms")
	b.ReportMetric(float64(base.Milliseconds())/n, "writer-ms")
	b.ReportMetric(float64(imp)/float64(base), "import/writer")
}
