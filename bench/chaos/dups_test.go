package chaos

import (
	"testing"
	"time"
)

func TestDupAttribution(t *testing.T) {
	const u1, u2 = "6f1c2a4e-0b7d-4c1e-9a55-3e2d1f0a9b8c", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	at := func(d *DupWatch, s float64) time.Time { return d.start.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name        string
		tl          func(d *DupWatch) []Entry
		system      string
		first, then float64
		want        string // cause, or "" for unexplained
	}{
		{"deliver killed between", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 10), Kind: KillStage, Target: "deliver-2"}}
		}, "sys-a", 9, 20, "deliver replica killed or restarted"},
		{"deliver restarted between (rebalance)", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 1), Kind: KillStage, Target: "deliver-1"}, {T: at(d, 15), Kind: "recovered", Target: "deliver-1"}}
		}, "sys-a", 12, 18, "deliver replica killed or restarted"},
		{"broker killed between", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 30), Kind: KillBroker, Target: "broker"}}
		}, "sys-a", 29, 45, "broker killed or restarted"},
		{"another stage's kill explains nothing", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 10), Kind: KillStage, Target: "validate-1"}}
		}, "sys-a", 9, 20, ""},
		{"deliver kill long before the first push", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 10), Kind: KillStage, Target: "deliver-1"}}
		}, "sys-a", 30, 40, ""},
		{"kill just before the first acceptance: in flight", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 29), Kind: KillStage, Target: "deliver-1"}}
		}, "sys-a", 30, 40, "deliver replica killed or restarted"},
		{"slow system, its own push", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 50), Kind: SlowRecipient, Target: "sys-slow"}, {T: at(d, 80), Kind: "recovered", Target: "sys-slow"}}
		}, "sys-slow", 85, 95, "slow recipient"},
		{"slow system does not explain another system's repeat", func(d *DupWatch) []Entry {
			return []Entry{{T: at(d, 50), Kind: SlowRecipient, Target: "sys-slow"}, {T: at(d, 80), Kind: "recovered", Target: "sys-slow"}}
		}, "sys-a", 60, 70, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDupWatch()
			d.first[mustKey(t, u2)] = 1 // another message, accepted once: no duplicate
			key := mustKey(t, u1)
			d.first[key] = int32(tc.first * 1000)
			d.dups = append(d.dups, dupPush{uuid: u1, system: tc.system, first: time.Duration(tc.first * float64(time.Second)), again: time.Duration(tc.then * float64(time.Second))})
			a := d.Attribute(tc.tl(d), 10*time.Second)
			if a.Total != 1 {
				t.Fatalf("total %d", a.Total)
			}
			if tc.want == "" {
				if a.Unexplained != 1 || len(a.Examples) != 1 {
					t.Fatalf("want unexplained, got %+v", a)
				}
				return
			}
			if a.Explained != 1 || a.ByCause[tc.want] != 1 {
				t.Fatalf("want %q, got %+v", tc.want, a)
			}
		})
	}
}

func TestDupWatchAccept(t *testing.T) {
	d := NewDupWatch()
	d.Accept("s", "6f1c2a4e-0b7d-4c1e-9a55-3e2d1f0a9b8c")
	d.Accept("s", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
	d.Accept("s", "6F1C2A4E-0B7D-4C1E-9A55-3E2D1F0A9B8C") // the same UUID in capitals
	d.Accept("s", "not-a-uuid")
	if len(d.first) != 2 || len(d.dups) != 1 || d.dups[0].system != "s" {
		t.Fatalf("first %d, dups %+v", len(d.first), d.dups)
	}
}

func mustKey(t *testing.T, u string) [16]byte {
	t.Helper()
	k, ok := uuidKey(u)
	if !ok {
		t.Fatalf("uuidKey(%q) failed", u)
	}
	return k
}
