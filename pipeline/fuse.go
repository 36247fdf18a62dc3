package pipeline

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Fuse runs two adjacent Transformers in one process and one transaction:
// what first emits to via (the topic between them) goes straight to second
// instead of through Kafka. Every other output of first (events, receipts)
// is kept. The fused stage reads first's inputs; second's consumer group is
// unused while fused, so a deployment fuses or splits the pair, never both.
//
// This saves one produce, one fetch and one (de)compression per record; the
// topic stays in the catalogue so the pair can be split to scale out.
func Fuse(first, second Transformer, via string) Transformer {
	return &fused{first: first, second: second, via: via}
}

type fused struct {
	first, second Transformer
	via           string
	inner         Batch
}

func (f *fused) Name() string { return f.first.Name() + "+" + f.second.Name() }

func (f *fused) Transform(ctx context.Context, b *Batch) error {
	if err := f.first.Transform(ctx, b); err != nil {
		return err
	}
	in := &f.inner
	in.reset()
	in.Records = in.Records[:0]
	kept := b.out[:0]
	for _, o := range b.out {
		if o.Topic == f.via {
			in.Records = append(in.Records, &kgo.Record{
				Key: o.Key, Value: o.Value, Headers: o.Headers, Topic: o.Topic, Timestamp: o.Timestamp,
			})
			continue
		}
		kept = append(kept, o)
	}
	b.out = kept
	if len(in.Records) == 0 {
		return nil
	}
	if err := f.second.Transform(ctx, in); err != nil {
		return err
	}
	b.out = append(b.out, in.out...)
	b.rejected = append(b.rejected, in.rejected...)
	return nil
}
