package sftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkSFTPVsTCP delivers 200 MeMo of 64 KiB per iteration three
// times, in the same run: through Client.Deliver to the in-process SFTP
// server (stat, create a hidden file, write, fsync if offered, close,
// rename, on a pooled connection; the server writes real files); as the
// same bytes over one bare TCP connection (length prefix, body, one-byte
// ack per message, the server discards); and as a REST push of the same
// bytes (HTTP POST on a keep-alive connection, the server discards), as
// the deliver stage makes it. It reports the three rates, sftp/tcp and
// sftp/rest. The gap is the price of SSH encryption, the SFTP round
// trips per file (about six) and the server's file system.
//
//	go test -run XXX -bench SFTPVsTCP -benchtime 3x ./stages/transport/sftp/
func BenchmarkSFTPVsTCP(b *testing.B) {
	const perIter, size = 200, 64 << 10
	r := newRig(b, Config{})
	body := memo(size)
	addr, stop := ackServer(b)
	defer stop()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
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
	var sftpTime, tcpTime time.Duration
	it := 0
	for b.Loop() {
		t0 := time.Now()
		for i := range perIter {
			if err := r.cl.Deliver(ctx, r.target, fmt.Sprintf("3f1c1f0e-8a4b-4c2d-%04x-%012x", it, i), body); err != nil {
				b.Fatal(err)
			}
		}
		sftpTime += time.Since(t0)
		t0 = time.Now()
		for range perIter {
			if err := tcpSend(nc, body); err != nil {
				b.Fatal(err)
			}
		}
		tcpTime += time.Since(t0)
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
	n := float64(it * perIter)
	b.ReportMetric(n/sftpTime.Seconds(), "sftp-msg/s")
	b.ReportMetric(n/tcpTime.Seconds(), "tcp-msg/s")
	b.ReportMetric(n/restTime.Seconds(), "rest-msg/s")
	b.ReportMetric(sftpTime.Seconds()/restTime.Seconds(), "sftp/rest")
	b.ReportMetric(sftpTime.Seconds()/tcpTime.Seconds(), "sftp/tcp")
}

func tcpSend(nc net.Conn, body []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := nc.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := nc.Write(body); err != nil {
		return err
	}
	_, err := io.ReadFull(nc, hdr[:1])
	return err
}

// ackServer reads length-prefixed messages and acknowledges each.
func ackServer(b *testing.B) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [4]byte
				for {
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:]))); err != nil {
						return
					}
					if _, err := c.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close() }
}
