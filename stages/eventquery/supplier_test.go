package eventquery

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/schemas/registry"
)

const (
	orgS = "44444444" // supplier whose standard system A's rsA selected
	orgT = "55555555" // supplier whose standard system B's rsB selected
	orgU = "66666666" // supplier nobody selected
)

// fakeSelections is Selections from a map.
type fakeSelections map[string][]string

func (f fakeSelections) SupplierSelections(org string) []string { return f[org] }

func withSelections(s Selections) fixtureOpt { return func(d *Deps) { d.Selections = s } }

func receivedBySystem(ids ...string) func(stored) bool {
	return func(s stored) bool { return slices.Contains(ids, s.ev.RecipientSystem) }
}

// TestSupplierSeesOnlyItsSelections: a supplier's administrator sees the
// events received by the systems that selected its standard systems, and
// not the other supplier's, not the selecting authority's other traffic,
// not a non-selecting authority's; in searches, statistics and proofs.
func TestSupplierSeesOnlyItsSelections(t *testing.T) {
	f := newFixture(t, withSelections(fakeSelections{orgS: {"rsA"}, orgT: {"rsB"}}))
	none := func(stored) bool { return false }
	for _, tc := range []struct {
		name string
		who  string
		q    url.Values
		want func(stored) bool
	}{
		{"supplier S: what A's rsA received", "supS", all(), receivedBySystem("rsA")},
		{"supplier T: what B's rsB received", "supT", all(), receivedBySystem("rsB")},
		{"supplier nobody selected: nothing", "supU", all(), none},
		{"S asks for A's other traffic: only rsA's", "supS", all("senderOrRecipient", orgA), receivedBySystem("rsA")},
		{"S asks for rsB: nothing", "supS", all("senderOrRecipientSystem", "rsB"), none},
		{"S asks for what it sent: nothing", "supS", all("direction", "sent"), none},
		{"S asks for C (never selected it)", "supS", all("senderOrRecipient", orgC), none},
		{"S with a log role: its own organisation's and rsA's", "supSlog", all(), func(s stored) bool { return visibleTo(orgS)(s) || receivedBySystem("rsA")(s) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get(t, tc.who, "/apis/v1/events", tc.q, "")
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var p EventPage
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			want := f.expect(tc.want)
			if (len(want) == 0) != (tc.who == "supU" || strings.HasSuffix(tc.name, "nothing") || strings.Contains(tc.name, "never selected")) {
				t.Fatalf("the test data has %d events for this case", len(want))
			}
			equalIDs(t, "visible events", ids(p), want)
			for _, e := range p.Content {
				if e.RecipientIDType == "CPR" && e.RecipientID != "" {
					t.Fatalf("a supplier sees a person's pseudonym")
				}
			}
			f.audits(t, 1)
		})
	}

	// Statistics: the selections' received events, grouped.
	whole := url.Values{"dateFrom": {"2026-10-01"}, "dateTo": {"2026-11-30"}, "dimensions": {"recipientSystem,tag"}}
	for _, tc := range []struct {
		who  string
		keep func(stored) bool
	}{{"supS", receivedBySystem("rsA")}, {"supT", receivedBySystem("rsB")}, {"supU", func(stored) bool { return false }}} {
		p := f.stats(t, tc.who, whole)
		f.audits(t, 1)
		if got, want := apiGroups(p), f.goGroups([]string{"recipientSystem", "tag"}, tc.keep); !maps.Equal(got, want) {
			t.Errorf("%s statistics %v, want %v", tc.who, got, want)
		}
	}

	// Proofs: S may prove delivery to rsA (message 2: B to A), not the
	// rest.
	for _, tc := range []struct {
		who    string
		msg    int
		status int
	}{
		{"supS", 2, http.StatusOK},
		{"supS", 1, http.StatusNotFound}, // A to B's rsB: T's
		{"supS", 0, http.StatusNotFound}, // A to a person
		{"supT", 1, http.StatusOK},
		{"supT", 2, http.StatusNotFound},
		{"supU", 2, http.StatusNotFound},
	} {
		r := f.get(t, tc.who, "/apis/v1/events/"+messageUUID(tc.msg)+"/proof", nil, "")
		if r.status != tc.status {
			t.Errorf("%s reading the proof of message %d: %d, want %d: %s", tc.who, tc.msg, r.status, tc.status, r.body)
		}
		f.audits(t, 1)
	}
}

// TestRegistrySelections: the registry adapter finds the systems that
// selected the supplier's standard systems, and nothing of another
// supplier.
func TestRegistrySelections(t *testing.T) {
	v := registry.NewMemView()
	now := time.Now()
	for _, e := range []registry.Entity{
		&registry.Org{CVR: orgA, Name: "A", Type: registry.OrgAuthority, Setup: 1},
		&registry.Org{CVR: orgS, Name: "S", Type: registry.OrgCompany},
		&registry.Org{CVR: orgT, Name: "T", Type: registry.OrgCompany},
		&registry.System{ID: "std-s1", Org: orgS, Name: "S1", SysKind: registry.SystemStandard, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.System{ID: "std-s2", Org: orgS, Name: "S2", SysKind: registry.SystemStandard, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.System{ID: "std-t", Org: orgT, Name: "T", SysKind: registry.SystemStandard, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.System{ID: "rsA", Org: orgA, Name: "A1", SysKind: registry.SystemRecipient, Template: "std-s1", Role: registry.RoleDefault},
		&registry.System{ID: "rsA2", Org: orgA, Name: "A2", SysKind: registry.SystemRecipient, Template: "std-s2", Role: registry.RoleRegular},
		&registry.System{ID: "rsA3", Org: orgA, Name: "A3", SysKind: registry.SystemRecipient, Template: "std-t", Role: registry.RoleRegular},
		&registry.System{ID: "rsOwn", Org: orgA, Name: "own", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleCVRPost},
	} {
		v.Apply(registry.NewChange(e, "t", now))
	}
	got := RegistrySelections{View: v}.SupplierSelections(orgS)
	slices.Sort(got)
	if !slices.Equal(got, []string{"rsA", "rsA2"}) {
		t.Fatalf("S: %v", got)
	}
	if got := (RegistrySelections{View: v}).SupplierSelections(orgA); len(got) != 0 {
		t.Fatalf("an authority is no supplier: %v", got)
	}
}
