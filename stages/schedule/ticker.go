package schedule

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// StartTicker writes a release tick to every partition of memo.schedule
// each TickInterval, until StopTicker or Close. Releases happen inside the
// stage's ordinary transactions, triggered by these records: a release is
// then fenced like any other output (its transaction commits the tick's
// offset with the group generation, so a replica that lost the partition
// cannot commit it), and it is ordered with the recalls of the same
// partition. Every replica ticks every partition; the stage's rate limiter
// makes duplicate ticks harmless.
func (s *Stage) StartTicker() error {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if s.tickCancel != nil {
		return nil
	}
	cl, err := kgo.NewClient(append(s.base,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(pipeline.TopicSchedule),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.tickCancel, s.tickDone = cancel, make(chan struct{})
	go func() {
		defer close(s.tickDone)
		defer cl.Close()
		s.tickLoop(ctx, cl)
	}()
	return nil
}

// StopTicker stops the ticks.
func (s *Stage) StopTicker() {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if s.tickCancel == nil {
		return
	}
	s.tickCancel()
	<-s.tickDone
	s.tickCancel = nil
}

var tickValue = []byte(`{"kind":"tick"}`)

func (s *Stage) tickLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	partitions := 0
	var refreshed time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if partitions == 0 || time.Since(refreshed) > time.Minute {
			td, err := s.adm.ListTopics(ctx, pipeline.TopicSchedule)
			if err == nil && td[pipeline.TopicSchedule].Err == nil {
				partitions, refreshed = len(td[pipeline.TopicSchedule].Partitions), time.Now()
			}
			if partitions == 0 {
				continue
			}
		}
		for p := range partitions {
			cl.Produce(ctx, &kgo.Record{Partition: int32(p), Value: tickValue}, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					s.log.Warn("schedule: release tick not written", "partition", p, "err", err)
				}
			})
		}
	}
}
