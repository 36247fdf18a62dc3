package recipientsim

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/transport/sftp"
)

func TestParseMix(t *testing.T) {
	cases := []struct {
		in   string
		want Mix
		ok   bool
	}{
		{"rest=80,sftp=10,smtp=10", Mix{80, 10, 10}, true},
		{"rest=100", Mix{REST: 100}, true},
		{" SFTP = 50 , smtp=50", Mix{SFTP: 50, SMTP: 50}, true},
		{"rest=80,sftp=10", Mix{}, false},
		{"rest=80,ftp=20", Mix{}, false},
		{"rest", Mix{}, false},
		{"rest=-1,sftp=101", Mix{}, false},
	}
	for _, tc := range cases {
		m, err := ParseMix(tc.in)
		if (err == nil) != tc.ok || m != tc.want {
			t.Errorf("ParseMix(%q) = %+v, %v", tc.in, m, err)
		}
	}
}

// TestMixApply: the mix assigns about its shares over many systems, the
// rewritten entries pass the registry's checks, and arrivals reach
// OnAccept.
func TestMixApply(t *testing.T) {
	m := Mix{REST: 60, SFTP: 20, SMTP: 20}
	x, err := StartMix(m, t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	count := map[registry.Protocol]int{}
	for i := range 2000 {
		s := &registry.System{ID: fmt.Sprintf("s%d", i), Org: "12345678", Name: "s", SysKind: registry.SystemRecipient, Role: registry.RoleRegular, Protocol: registry.RestPush,
			Endpoint: "http://127.0.0.1:1/push", MemoVersion: 11}
		if err := x.Apply(s); err != nil {
			t.Fatal(err)
		}
		count[s.Protocol]++
		if i < 50 {
			if err := s.Validate(); err != nil {
				t.Fatalf("%s (%s): %v", s.ID, s.Protocol, err)
			}
		}
	}
	for p, share := range map[registry.Protocol]int{registry.RestPush: 60, registry.SFTP: 20, registry.SMTP: 20} {
		if got := count[p] * 100 / 2000; got < share-4 || got > share+4 {
			t.Errorf("%s: %d%%, want about %d%%", p, got, share)
		}
	}
	var n atomic.Int32
	x.OnAccept(func(system, _ string) {
		if system == "sftp" {
			n.Add(1)
		}
	})
	cl, err := sftp.New(sftp.Config{KeyFile: x.Keys.SSHKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Deliver(context.Background(), x.SFTP.Target("s"), "00000000-0000-4000-8000-000000000001", []byte("<memo/>")); err != nil || n.Load() != 1 {
		t.Fatalf("arrival not seen: %v, %d", err, n.Load())
	}
}
