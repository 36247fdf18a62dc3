package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/ingest/archive"
)

// Mix is the shape of a generated load: shares of message kinds and their
// sizes. Shares are fractions of all messages; the rest are letters.
type Mix struct {
	// NemSMSShare are short NEMSMS messages (citizens only).
	NemSMSShare float64 `json:"nemsms_share"`
	// AttachmentShare are messages with a large main document.
	AttachmentShare float64 `json:"attachment_share"`
	// InvalidShare are messages that pass ingest (well-formed XML) but fail
	// validation, so the run exercises rejections and their receipts.
	InvalidShare float64 `json:"invalid_share"`
	// RichShare of letters carry optional header data and actions
	// (ContentData, ReplyData, ...): authority letters usually do.
	RichShare  float64       `json:"rich_share"`
	Letter     memo.SizeDist `json:"-"`
	Attachment memo.SizeDist `json:"-"`
}

// DefaultMix is a mass send as authorities make them: mostly letters with
// rich headers and a small document, some NEMSMS, a few with a large
// attachment. Its median message is about 3 KB (p99 about 30 KB).
// Document bytes are random, as in PDFs, which do not compress: that is
// what makes preparing the batches slow (LZMA runs at about 1 MB/s per
// core on them), and why documents of letters are kept small.
func DefaultMix() Mix {
	return Mix{
		NemSMSShare:     0.10,
		AttachmentShare: 0.01,
		RichShare:       1,
		Letter:          memo.SizeDist{Kind: memo.SizeLogNormal, Bytes: 500, Sigma: 0.5, Max: 64 << 10},
		Attachment:      memo.SizeDist{Kind: memo.SizeLogNormal, Bytes: 24 << 10, Sigma: 0.8, Max: 1 << 20},
	}
}

func (m Mix) key() string {
	return fmt.Sprintf("r%.2f-n%.4f-a%.4f-i%.4f-l%d.%d.%.2f.%d-A%d.%d.%.2f.%d", m.RichShare, m.NemSMSShare, m.AttachmentShare, m.InvalidShare,
		m.Letter.Kind, m.Letter.Bytes, m.Letter.Sigma, m.Letter.Max, m.Attachment.Kind, m.Attachment.Bytes, m.Attachment.Sigma, m.Attachment.Max)
}

// Message kinds in a MessageSet.
const (
	KindLetter uint8 = iota
	KindNemSMS
	KindAttachment
	KindInvalid
)

var kindNames = [...]string{"letter", "nemsms", "attachment", "invalid"}

// Item is one generated message.
type Item struct {
	UUID string // lower case
	Kind uint8
	Data []byte
}

// MessageSet is a deterministic load: batch i of a seed always holds the
// same messages, whichever worker builds it, so a prepared set on disk, a
// live send and a direct produce send byte-identical messages.
type MessageSet struct {
	Seed      uint64
	Messages  int
	BatchSize int
	Mix       Mix
	SenderOrg string
	// Day is the generator's clock (midnight UTC): createdDateTime and
	// value-date checks are relative to it.
	Day time.Time
	// Recipients, when set, are whom the messages address (the bench's
	// registry: every message routes to a push system on the recipient
	// simulator); nil: the generator's synthetic recipients, which no
	// registry knows (runs that end at validate).
	Recipients *Recipients
	// ValueDate (YYYY-MM-DD), when set, is every message's
	// doNotDeliverUntilDate: the schedule stage holds them until 00:00
	// Europe/Copenhagen that day.
	ValueDate string
	// Offset is the manifest position of the set's first message when a
	// scenario sends several sets (not part of the messages or the key).
	Offset int `json:"-"`
	// Tag tells sets of one run apart (held and live messages of the
	// value-date scenario): it is part of the UUIDs' seed and of the
	// cache key.
	Tag uint64
}

func (s *MessageSet) key() string {
	k := fmt.Sprintf("massend-%s-seed%d-n%d-b%d-%s-%s", s.Day.Format("20060102"), s.Seed, s.Messages, s.BatchSize, s.SenderOrg, s.Mix.key())
	if s.Recipients != nil {
		k += "-R" + s.Recipients.Key()
	}
	if s.ValueDate != "" {
		k += "-V" + s.ValueDate
	}
	if s.Tag != 0 {
		k += fmt.Sprintf("-T%d", s.Tag)
	}
	return k
}

// Batches is the number of batches.
func (s *MessageSet) Batches() int { return (s.Messages + s.BatchSize - 1) / s.BatchSize }

func (s *MessageSet) batchLen(i int) int {
	if i == s.Batches()-1 && s.Messages%s.BatchSize != 0 {
		return s.Messages % s.BatchSize
	}
	return s.BatchSize
}

// Batch generates batch i. Each kind has its own generator, seeded by the
// set's seed, the batch and the kind, so the batch does not depend on any
// other.
func (s *MessageSet) Batch(i int) []Item {
	n := s.batchLen(i)
	seed := s.Seed<<24 ^ uint64(i)<<4 ^ s.Tag<<48
	base := memo.GenConfig{Now: s.Day, SenderCVRs: []string{s.SenderOrg}, ValueDateShare: -1}
	if s.ValueDate != "" {
		base.ValueDateShare = 1 // its date is replaced by ValueDate below
	}
	if r := s.Recipients; r != nil {
		// Registered citizens and companies only (no authorities: their
		// contact points are not generated): every message routes.
		base.CitizenCPRs, base.CompanyCVRs, base.AuthorityShare = r.Citizens, r.Companies, -1
	}
	letters := base
	letters.Seed, letters.NemSMSShare, letters.AttachmentSize = seed|1, -1, s.Mix.Letter
	letters.RichShare, letters.ActionShare = s.Mix.RichShare, s.Mix.RichShare
	sms := base
	sms.Seed, sms.NemSMSShare, sms.CitizenShare, sms.CompanyShare, sms.AuthorityShare = seed|2, 1, 1, -1, -1
	if s.Recipients != nil {
		sms.CitizenCPRs = s.Recipients.NemSMS // route rejects NEMSMS to anyone else
	}
	att := base
	att.Seed, att.NemSMSShare, att.AttachmentSize = seed|3, -1, s.Mix.Attachment
	gens := [3]*memo.Generator{memo.NewGenerator(letters), memo.NewGenerator(sms), memo.NewGenerator(att)}
	rng := rand.New(rand.NewPCG(s.Seed, uint64(i)))
	out := make([]Item, n)
	for j := range out {
		p := rng.Float64()
		kind := KindLetter
		switch {
		case p < s.Mix.NemSMSShare:
			kind = KindNemSMS
		case p < s.Mix.NemSMSShare+s.Mix.AttachmentShare:
			kind = KindAttachment
		}
		b, u := gens[kind].Next(nil)
		if s.ValueDate != "" {
			b = setValueDate(b, s.ValueDate)
		}
		if rng.Float64() < s.Mix.InvalidShare {
			// Well-formed but schema-invalid: ingest accepts, validate rejects.
			b = bytes.Replace(b, []byte("<memo:messageType>"), []byte("<memo:messageType>X"), 1)
			kind = KindInvalid
		}
		out[j] = Item{UUID: strings.ToLower(u.String()), Kind: kind, Data: b}
	}
	return out
}

var valueDateTag = []byte("<memo:doNotDeliverUntilDate>")

// setValueDate overwrites the message's doNotDeliverUntilDate (a
// YYYY-MM-DD of the same length) with date.
func setValueDate(b []byte, date string) []byte {
	i := bytes.Index(b, valueDateTag)
	if i < 0 || len(date) != 10 {
		return b
	}
	copy(b[i+len(valueDateTag):], date)
	return b
}

// Manifest is what a run checks against: every message's UUID, kind and
// size, in batch order.
type Manifest struct {
	UUIDs [][16]byte
	Kinds []uint8
	Sizes []uint32
}

func (m *Manifest) add(it Item) {
	m.UUIDs = append(m.UUIDs, parseUUID(it.UUID))
	m.Kinds = append(m.Kinds, it.Kind)
	m.Sizes = append(m.Sizes, uint32(len(it.Data)))
}

// KindCounts counts the messages of each kind.
func (m *Manifest) KindCounts() map[string]int {
	out := map[string]int{}
	for _, k := range m.Kinds {
		out[kindNames[k]]++
	}
	return out
}

// SizeQuantile returns the q-quantile of message sizes in bytes.
func (m *Manifest) SizeQuantile(q float64) int {
	s := make([]float64, len(m.Sizes))
	for i, v := range m.Sizes {
		s[i] = float64(v)
	}
	sort.Float64s(s)
	return int(Quantile(s, q))
}

func parseUUID(s string) [16]byte {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	_, _ = hex.Decode(u[:], []byte(h))
	return u
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Prepared is a message set as tar+LZMA batch files on disk.
type Prepared struct {
	Dir      string
	Files    []string
	Manifest *Manifest
	Bytes    int64 // uncompressed MeMo bytes
	LZMA     int64 // bytes of the batch files
	Seconds  float64
	Cached   bool
}

// Prepare writes the set's batches as tar+LZMA files under cacheDir, in
// a directory named by everything that shapes the set, and reuses it when
// it is complete. Compression takes far longer than the pipeline spends on
// the same messages (LZMA of random attachment bytes runs at about
// 1.5 MB/s per core), so it happens before the clock starts, on every core;
// a real mass send is compressed on the senders' machines, not here.
func (s *MessageSet) Prepare(ctx context.Context, cacheDir string, progress func(done, total int)) (*Prepared, error) {
	dir := filepath.Join(cacheDir, s.key())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	p := &Prepared{Dir: dir, Files: make([]string, s.Batches())}
	man := make([]Manifest, s.Batches())
	sizes := make([]int64, s.Batches())
	lz := make([]int64, s.Batches())
	cached := atomic.Int64{}
	var done atomic.Int64
	err := parallel(ctx, s.Batches(), runtime.GOMAXPROCS(0), func(_ context.Context, i int) error {
		items := s.Batch(i)
		for _, it := range items {
			man[i].add(it)
			sizes[i] += int64(len(it.Data))
		}
		path := filepath.Join(dir, fmt.Sprintf("batch-%06d.tar.lzma", i))
		p.Files[i] = path
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			lz[i] = st.Size()
			cached.Add(1)
		} else {
			n, err := writeBatch(path, items)
			if err != nil {
				return err
			}
			lz[i] = n
		}
		d := done.Add(1)
		if progress != nil {
			progress(int(d), s.Batches())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.Manifest = &Manifest{}
	for i := range man {
		p.Manifest.UUIDs = append(p.Manifest.UUIDs, man[i].UUIDs...)
		p.Manifest.Kinds = append(p.Manifest.Kinds, man[i].Kinds...)
		p.Manifest.Sizes = append(p.Manifest.Sizes, man[i].Sizes...)
		p.Bytes += sizes[i]
		p.LZMA += lz[i]
	}
	p.Cached = int(cached.Load()) == s.Batches()
	p.Seconds = time.Since(start).Seconds()
	return p, nil
}

// writeBatch writes items as a tar+LZMA file atomically (a crash leaves no
// half file that a later run would take as prepared).
func writeBatch(path string, items []Item) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	w := archive.NewWriter(f, true)
	for _, it := range items {
		if err := w.Add(it.UUID+".xml", it.Data); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(tmp, path)
}

// contentHash is the hex SHA-256 ingest puts in its header.
func contentHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// uuidIndex finds manifest positions by UUID: a sorted copy of the UUIDs
// (16 MB for a million) instead of a map (about 50 MB), because in the
// in-process setup the bench's memory counts against the pipeline's RSS.
type uuidIndex struct {
	keys [][16]byte
	pos  []int32
}

func newUUIDIndex(uuids [][16]byte) *uuidIndex {
	ix := &uuidIndex{keys: make([][16]byte, len(uuids)), pos: make([]int32, len(uuids))}
	order := make([]int32, len(uuids))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool { return bytes.Compare(uuids[order[a]][:], uuids[order[b]][:]) < 0 })
	for i, o := range order {
		ix.keys[i], ix.pos[i] = uuids[o], o
	}
	return ix
}

// find returns the manifest position of u, or -1.
func (ix *uuidIndex) find(u [16]byte) int {
	i := sort.Search(len(ix.keys), func(i int) bool { return bytes.Compare(ix.keys[i][:], u[:]) >= 0 })
	if i < len(ix.keys) && ix.keys[i] == u {
		return int(ix.pos[i])
	}
	return -1
}

// ErrLoss is returned (wrapped) by Run when the correctness check fails:
// messages lost or the event log not exactly as expected. Such a run fails
// whatever its speed.
var ErrLoss = errors.New("bench: correctness check failed")
