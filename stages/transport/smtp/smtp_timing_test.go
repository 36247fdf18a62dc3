package smtp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// BenchmarkSMTPVsPlain delivers 100 MeMo of 64 KiB per iteration three
// times, in the same run: through Client.Deliver to the in-process server
// (sign with RSA-2048, encrypt AES-256-CBC to the system's certificate,
// MIME, STARTTLS session reused with RSET; the server, in the same
// process, decrypts and verifies); as the same MeMo bytes in a plain SMTP
// transaction on one reused session without TLS or S/MIME to a server
// that discards them; and as a REST push of the same bytes (HTTP POST on
// a keep-alive connection). It reports the three rates, smime/plain and
// smime/rest.
//
//	go test -run XXX -bench SMTPVsPlain -benchtime 3x ./stages/transport/smtp/
func BenchmarkSMTPVsPlain(b *testing.B) {
	const perIter, size = 100, 64 << 10
	r := newRig(b, ServerConfig{}, Config{})
	body := memo(size)

	plain := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return discardSession{}, nil }))
	plain.Domain = "localhost"
	plain.AllowInsecureAuth = true
	plain.ErrorLog = discardLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = plain.Serve(ln) }()
	defer plain.Close()
	pc, err := gosmtp.Dial(ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()

	// A REST push of the same bytes (HTTP POST to a keep-alive server
	// that reads and discards), as the deliver stage does for REST_PUSH.
	rest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer rest.Close()
	hc := rest.Client()
	ctx := context.Background()
	var restTime time.Duration
	var smimeTime, plainTime time.Duration
	it := 0
	for b.Loop() {
		t0 := time.Now()
		for i := range perIter {
			if err := r.cl.Deliver(ctx, r.target, fmt.Sprintf("3f1c1f0e-8a4b-4c2d-%04x-%012x", it, i), body); err != nil {
				b.Fatal(err)
			}
		}
		smimeTime += time.Since(t0)
		t0 = time.Now()
		for range perIter {
			if err := pc.SendMail("noreply@memoflow.test", []string{"post@kommune.test"}, bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
		plainTime += time.Since(t0)
		t0 = time.Now()
		for range perIter {
			resp, err := hc.Post(rest.URL, "application/xml", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		restTime += time.Since(t0)
		it++
	}
	if r.srv.Total() != it*perIter {
		b.Fatalf("server accepted %d of %d", r.srv.Total(), it*perIter)
	}
	n := float64(it * perIter)
	b.ReportMetric(n/smimeTime.Seconds(), "smime-msg/s")
	b.ReportMetric(n/plainTime.Seconds(), "plain-msg/s")
	b.ReportMetric(n/restTime.Seconds(), "rest-msg/s")
	b.ReportMetric(smimeTime.Seconds()/restTime.Seconds(), "smime/rest")
	b.ReportMetric(smimeTime.Seconds()/plainTime.Seconds(), "smime/plain")
}

type discardSession struct{}

func (discardSession) Reset()                                 {}
func (discardSession) Logout() error                          { return nil }
func (discardSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error                 { _, err := io.Copy(io.Discard, r); return err }
