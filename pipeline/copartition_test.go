package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// coCopy is copyStage marked CoPartitioned.
type coCopy struct{ copyStage }

func (*coCopy) CoPartitioned() {}

// TestCoPartitionedAssignment: three members of a CoPartitioned stage reading
// two 5-partition topics each own partition p of both topics, never one
// each. Without the marker (cooperative-sticky) this is not guaranteed.
func TestCoPartitionedAssignment(t *testing.T) {
	_, kc := newCluster(t, 5, "co.a", "co.b", "co.out")
	rc := testRunnerConfig()
	var runners []*Runner
	for i := range 3 {
		rc.ReplicaID = fmt.Sprintf("r%d", i)
		st := &coCopy{copyStage{out: "co.out"}}
		r, err := NewRunner(st, []string{"co.a", "co.b"}, kc, rc,
			WithLogger(quietLogger()), WithMetrics(NewMetrics(prometheus.NewRegistry())))
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		startRunner(t, r)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.BrokerList()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(t, 30*time.Second, "three members sharing all 10 partitions", func() bool {
		gs, err := adm.DescribeGroups(context.Background(), runners[0].Group())
		if err != nil {
			return false
		}
		g := gs[runners[0].Group()]
		if g.State != "Stable" || len(g.Members) != 3 {
			return false
		}
		total := 0
		for _, m := range g.Members {
			ca, ok := m.Assigned.AsConsumer()
			if !ok {
				return false
			}
			byTopic := map[string][]int32{}
			for _, tp := range ca.Topics {
				ps := slices.Clone(tp.Partitions)
				slices.Sort(ps)
				byTopic[tp.Topic] = ps
				total += len(ps)
			}
			if len(byTopic["co.a"]) == 0 {
				return false
			}
			if !slices.Equal(byTopic["co.a"], byTopic["co.b"]) {
				t.Fatalf("member %s owns co.a %v but co.b %v: not co-partitioned", m.MemberID, byTopic["co.a"], byTopic["co.b"])
			}
		}
		return total == 10
	})
}
