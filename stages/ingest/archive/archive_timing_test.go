package archive

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// benchBatch is a 10,000-message batch of MeMo-like XML, 1-3 KB each, as
// plain tar and as tar+LZMA. Built once: encoding takes a few seconds.
var benchBatch = sync.OnceValues(func() (plain, compressed []byte) {
	rng := rand.New(rand.NewPCG(42, 7))
	words := strings.Fields(`skat borger kommune ydelse pension afgørelse klage frist betaling
		beløb opkrævning bolig støtte ansøgning vedlagt venligst hilsen kontakt telefon
		digital post brev oplysninger ændring adresse periode måned kroner årsopgørelse`)
	var pw, cw bytes.Buffer
	p, c := NewWriter(&pw, false), NewWriter(&cw, true)
	var msg strings.Builder
	for i := range 10_000 {
		msg.Reset()
		fmt.Fprintf(&msg, `<?xml version="1.0" encoding="UTF-8"?>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2"><memo:MessageHeader>
<memo:messageType>DIGITALPOST</memo:messageType><memo:messageUUID>%08x-%04x-4%03x-8%03x-%012x</memo:messageUUID>
<memo:label>Brev %d</memo:label><memo:mandatory>false</memo:mandatory><memo:legalNotification>false</memo:legalNotification>
<memo:Sender><memo:senderID>%08d</memo:senderID><memo:idType>CVR</memo:idType><memo:label>Kommune</memo:label></memo:Sender>
<memo:Recipient><memo:recipientID>%010d</memo:recipientID><memo:idType>CPR</memo:idType></memo:Recipient>
</memo:MessageHeader><memo:MessageBody><memo:createdDateTime>2026-03-%02dT10:%02d:00Z</memo:createdDateTime>
<memo:MainDocument><memo:File><memo:encodingFormat>text/plain</memo:encodingFormat><memo:filename>brev.txt</memo:filename>
<memo:language>da</memo:language><memo:content>`,
			rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff,
			i, 10000000+rng.IntN(89999999), rng.Int64N(9999999999), 1+rng.IntN(28), rng.IntN(60))
		// The body: 1-3 KB of words, then base64-looking noise, the way an
		// attachment sits in a MeMo.
		for target := 700 + rng.IntN(1800); msg.Len() < target; {
			msg.WriteString(words[rng.IntN(len(words))])
			msg.WriteByte(' ')
		}
		for range 1 + rng.IntN(4) {
			fmt.Fprintf(&msg, "%016x", rng.Uint64())
		}
		msg.WriteString("</memo:content></memo:File></memo:MainDocument></memo:MessageBody></memo:Message>\n")
		name := fmt.Sprintf("%05d.xml", i)
		for _, w := range []*Writer{p, c} {
			if err := w.Add(name, []byte(msg.String())); err != nil {
				panic(err)
			}
		}
	}
	for _, w := range []*Writer{p, c} {
		if err := w.Close(); err != nil {
			panic(err)
		}
	}
	return pw.Bytes(), cw.Bytes()
})

// BenchmarkArchive reads the 10k-message batch. MB/s are of decompressed
// (tar) bytes throughout, so the rows compare directly:
//
//	reader/lzma   Reader over tar+LZMA, every Body read to io.Discard
//	reader/bytes  the same with Entry.Bytes, as ingest uses it
//	lzma-raw      ulikunitz/xz/lzma alone, decoding to io.Discard: the floor
//	reader/tar    Reader over the plain tar: the cost of tar and checks
//
// reader/lzma divided by lzma-raw is the Reader's overhead.
//
//	go test -run '^$' -bench Archive -benchmem ./stages/ingest/archive/
func BenchmarkArchive(b *testing.B) {
	plain, compressed := benchBatch()
	readAll := func(b *testing.B, data []byte, compressed, useBytes bool) {
		r := NewReader(bytes.NewReader(data), Limits{}, compressed)
		n := 0
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if useBytes {
				_, err = e.Bytes()
			} else {
				_, err = io.Copy(io.Discard, e.Body)
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10_000 {
			b.Fatalf("%d entries", n)
		}
	}
	b.Run("reader/lzma", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			readAll(b, compressed, true, false)
		}
		// After the loop: b.Loop's first call resets reported metrics.
		b.ReportMetric(float64(len(plain))/float64(len(compressed)), "x-compression")
	})
	b.Run("reader/bytes", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			readAll(b, compressed, true, true)
		}
	})
	b.Run("lzma-raw", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			lr, err := lzma.NewReader(bytes.NewReader(compressed))
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, lr); err != nil || n != int64(len(plain)) {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("reader/tar", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			readAll(b, plain, false, false)
		}
	})
}
