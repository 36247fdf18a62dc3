package deliver

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

var (
	transportMsgs    = flag.Int("deliver.transport.messages", 200, "BenchmarkTransports: messages per protocol")
	transportSystems = flag.Int("deliver.transport.systems", 4, "BenchmarkTransports: recipient systems per protocol (one server each protocol)")
)

// BenchmarkTransports: messages/s through the Deliverer (one sink batch,
// per-system gates, events and receipts) to the in-process SFTP server
// and SMTP server (STARTTLS, S/MIME sign and encrypt; the server decrypts
// and verifies), against REST push to the recipient simulator in the same
// run. A realistic generated MeMo 1.2 (about 1.4 KB) taken as 1.2.
//
//	go test -run '^$' -bench BenchmarkTransports -benchtime 1x ./stages/deliver/
func BenchmarkTransports(b *testing.B) {
	r := newTransportRig(b, nil)
	_, base := simServer(b, recipientsim.Config{})
	protos := []struct {
		name string
		sys  func(id string) System
	}{
		{"rest", func(id string) System { return pushSystem(id, base) }},
		{"sftp", r.sftpSystem},
		{"smtp", r.smtpSystem},
	}
	body := memo12(b, 0, "").Body
	rates := map[string]float64{}
	seq := 0
	b.ResetTimer()
	for range b.N {
		for _, p := range protos {
			var ss []System
			for i := range *transportSystems {
				ss = append(ss, p.sys(p.name+"-"+itoa(i)))
			}
			d := r.deliverer(b, NewStaticSystems(ss...))
			items := make([]*item, *transportMsgs)
			for i := range items {
				seq++
				env := testEnv(seq, ss[i%len(ss)].ID)
				env.Body, env.Size = body, uint64(len(body))
				items[i] = &item{env: *env}
			}
			start := time.Now()
			d.run(context.Background(), items)
			el := time.Since(start)
			for _, it := range items {
				if it.err != nil || len(it.out) == 0 {
					b.Fatalf("%s: %v", p.name, it.err)
				}
				var rc records.Receipt
				for _, o := range it.out {
					if o.Topic == pipeline.TopicReceipts {
						_ = records.DecodeReceipt(o.Value, &rc)
					}
				}
				if rc.ReceiptStatus != records.StatusCompleted {
					b.Fatalf("%s: not delivered: %s", p.name, failCode(b, byTopic(it.out)))
				}
			}
			rates[p.name] += float64(len(items)) / el.Seconds() / float64(b.N)
		}
	}
	b.StopTimer()
	b.ReportMetric(rates["rest"], "rest_msgs/s")
	b.ReportMetric(rates["sftp"], "sftp_msgs/s")
	b.ReportMetric(rates["smtp"], "smtp_msgs/s")
	b.ReportMetric(rates["sftp"]/rates["rest"], "sftp/rest")
	b.ReportMetric(rates["smtp"]/rates["rest"], "smtp/rest")
}
