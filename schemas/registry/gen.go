package registry

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// GenConfig sizes a synthetic registry (memoflow gen registry, tests,
// benchmarks). The same config gives the same changes.
type GenConfig struct {
	Seed        uint64
	Citizens    int
	Companies   int
	Authorities int
	// PointsPerAuthority contact points per authority (in groups of 10).
	PointsPerAuthority int
	// MailboxProviders is the number of mailbox provider systems; the
	// first takes about 90% of citizens and companies, as the largest
	// provider does in Denmark.
	MailboxProviders int
	// ExemptShare of citizens and companies are exempt (default 0.03);
	// NemSMSShare of registered citizens receive NemSMS (default 0.4);
	// OwnSystemShare of companies have a recipient system (default 0.05).
	ExemptShare, NemSMSShare, OwnSystemShare float64
	Actor                                    string    // default "memoflow-gen"
	Time                                     time.Time // default 2026-01-01
}

// Validate checks the sizes.
func (c *GenConfig) Validate() error {
	switch {
	case c.Citizens < 0 || c.Citizens > 300_000_000:
		return fmt.Errorf("citizens: %d is outside 0..300,000,000", c.Citizens)
	case c.Companies < 0 || c.Companies+c.Authorities > 8_000_000:
		return fmt.Errorf("companies + authorities: %d is above 8,000,000 distinct CVRs", c.Companies+c.Authorities)
	case c.Authorities < 0 || c.PointsPerAuthority < 0 || c.PointsPerAuthority > 100_000:
		return fmt.Errorf("authorities and points per authority must be 0..100,000")
	case c.MailboxProviders < 1 || c.MailboxProviders > 100:
		return fmt.Errorf("mailbox providers: %d is outside 1..100", c.MailboxProviders)
	}
	return nil
}

func (c *GenConfig) defaults() {
	if c.ExemptShare == 0 {
		c.ExemptShare = 0.03
	}
	if c.NemSMSShare == 0 {
		c.NemSMSShare = 0.4
	}
	if c.OwnSystemShare == 0 {
		c.OwnSystemShare = 0.05
	}
	if c.Actor == "" {
		c.Actor = "memoflow-gen"
	}
	if c.Time.IsZero() {
		c.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.MailboxProviders == 0 {
		c.MailboxProviders = 3
	}
}

// Generate calls emit with every change of the synthetic registry, systems
// before what refers to them. CPRs and CVRs are distinct and well-shaped
// (CVRs pass the modulus-11 check) without remembering them: they are the
// images of 0, 1, 2, ... under a fixed permutation of their number space.
func Generate(cfg GenConfig, emit func(Change) error) error {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))
	put := func(e Entity) error { return emit(NewChange(e, cfg.Actor, cfg.Time)) }
	mailbox := func(i int) string { return "mbox-" + strconv.Itoa(i+1) }
	pickMailbox := func() string {
		if cfg.MailboxProviders == 1 || r.Float64() < 0.9 {
			return mailbox(0)
		}
		return mailbox(1 + r.IntN(cfg.MailboxProviders-1))
	}
	for i := 0; i < cfg.MailboxProviders; i++ {
		if err := put(&System{ID: mailbox(i), Name: "Mailbox provider " + strconv.Itoa(i+1), SysKind: SystemMailbox,
			Protocol: RestPush, Endpoint: "https://" + mailbox(i) + ".example/memos", MemoVersion: 12,
			Credentials: "secret:" + mailbox(i)}); err != nil {
			return err
		}
	}
	if err := put(&System{ID: "sms", Name: "NemSMS provider", SysKind: SystemSMS, Protocol: RestPush, Endpoint: "https://sms.example/memos", MemoVersion: 11}); err != nil {
		return err
	}
	if err := put(&System{ID: "print", Name: "Physical-print provider", SysKind: SystemPrint, Protocol: RestPull, MemoVersion: 11}); err != nil {
		return err
	}
	cvrs := newCVRSeq(cfg.Seed)
	for a := 0; a < cfg.Authorities; a++ {
		cvr := cvrs.next()
		if err := genAuthority(cfg, r, cvr, a, put); err != nil {
			return err
		}
	}
	for c := 0; c < cfg.Companies; c++ {
		cvr := cvrs.next()
		co := &Company{CVR: cvr, Status: Registered, Mailbox: pickMailbox()}
		if r.Float64() < cfg.ExemptShare {
			co.Status, co.Mailbox = Exempt, ""
		} else if r.Float64() < cfg.OwnSystemShare {
			co.System = "csys-" + cvr
			if err := put(&Org{CVR: cvr, Name: "Virksomhed " + cvr, Type: OrgCompany}); err != nil {
				return err
			}
			if err := put(&System{ID: co.System, Org: cvr, Name: "System of " + cvr, SysKind: SystemRecipient, Protocol: RestPush,
				Endpoint: "https://" + cvr + ".example/memos", MemoVersion: 11, Role: RoleDefault}); err != nil {
				return err
			}
		}
		if err := put(co); err != nil {
			return err
		}
	}
	cprs := newCPRSeq(cfg.Seed)
	for i := 0; i < cfg.Citizens; i++ {
		c := &Citizen{CPR: cprs.next(), Status: Registered, Mailbox: pickMailbox()}
		if r.Float64() < cfg.ExemptShare {
			c.Status, c.Mailbox = Exempt, ""
		} else {
			c.NemSMS = r.Float64() < cfg.NemSMSShare
		}
		if err := put(c); err != nil {
			return err
		}
	}
	return nil
}

var kle = []string{"00.01.00", "02.00", "15.20.05", "27.24.00", "32.18.04", "54.02"}

func genAuthority(cfg GenConfig, r *rand.Rand, cvr string, n int, put func(Entity) error) error {
	if err := put(&Org{CVR: cvr, Name: "Myndighed " + strconv.Itoa(n+1), Type: OrgAuthority, Setup: 1}); err != nil {
		return err
	}
	sys := []string{"dflt-" + cvr, "cvr-" + cvr, "reg1-" + cvr, "reg2-" + cvr}
	roles := []Role{RoleDefault, RoleCVRPost, RoleRegular, RoleRegular}
	for i, id := range sys {
		s := &System{ID: id, Org: cvr, Name: id, SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11 + uint8(i%2), Role: roles[i],
			Contact: Contact{Name: "Driftsvagt", Email: "drift@" + cvr + ".example"}}
		if roles[i] == RoleRegular {
			s.Protocol, s.Endpoint, s.Credentials = RestPush, "https://"+id+".example/memos", "secret:"+id
		}
		if err := put(s); err != nil {
			return err
		}
	}
	var group string
	for p := 0; p < cfg.PointsPerAuthority; p++ {
		if p%10 == 0 {
			group = "g-" + cvr + "-" + strconv.Itoa(p/10)
			if err := put(&ContactGroup{ID: group, Org: cvr, Name: "Gruppe " + strconv.Itoa(p/10), Visibility: VisibleAll}); err != nil {
				return err
			}
		}
		cp := &ContactPoint{ID: "cp-" + cvr + "-" + strconv.Itoa(p), ParentID: group, Org: cvr, Name: "Kontaktpunkt " + strconv.Itoa(p),
			Keywords: []string{"emne" + strconv.Itoa(p%50)}, KLE: []string{kle[r.IntN(len(kle))]}, Visibility: Visibility(1 + r.IntN(7)),
			System: sys[r.IntN(len(sys))]}
		if cp.System == sys[1] {
			cp.System = "" // points without a system go to the default
		}
		if err := put(cp); err != nil {
			return err
		}
	}
	if cfg.PointsPerAuthority > 0 {
		return put(&LegacyMailbox{Org: cvr, Mailbox: "POST", ContactPoint: "cp-" + cvr + "-0"})
	}
	return nil
}

// cprSeq enumerates distinct CPRs: i -> (i*p + off) mod M over the space
// of day 1..28 × month 1..12 × year 00..99 × serial 0000..9999; p is a
// prime coprime with M = 2^10·3·5^6·7, so the map is a permutation.
type cprSeq struct{ i, off uint64 }

const (
	cprSpace = 28 * 12 * 100 * 10000
	permP    = 1_000_003
)

func newCPRSeq(seed uint64) *cprSeq { return &cprSeq{off: seed % cprSpace} }

func (s *cprSeq) next() string {
	j := (s.i*permP + s.off) % cprSpace
	s.i++
	serial := j % 10000
	j /= 10000
	year := j % 100
	j /= 100
	month := j%12 + 1
	day := j/12 + 1
	var b [10]byte
	put2 := func(at int, v uint64) { b[at], b[at+1] = byte('0'+v/10), byte('0'+v%10) }
	put2(0, day)
	put2(2, month)
	put2(4, year)
	put2(6, serial/100)
	put2(8, serial%100)
	return string(b[:])
}

// cvrSeq enumerates distinct modulus-11-valid CVRs over the 7-digit
// prefixes 1000000..9999999 (a permutation, as cprSeq), skipping prefixes
// whose check digit would be 10.
type cvrSeq struct{ i, off uint64 }

const cvrSpace = 9_000_000

func newCVRSeq(seed uint64) *cvrSeq { return &cvrSeq{off: (seed * 7919) % cvrSpace} }

func (s *cvrSeq) next() string {
	for {
		j := (s.i*permP+s.off)%cvrSpace + 1_000_000
		s.i++
		var b [8]byte
		w := [7]uint64{2, 7, 6, 5, 4, 3, 2}
		sum := uint64(0)
		for k := 6; k >= 0; k-- {
			d := j % 10
			j /= 10
			b[k] = byte('0' + d)
			sum += d * w[k]
		}
		check := (11 - sum%11) % 11
		if check == 10 {
			continue
		}
		b[7] = byte('0' + check)
		return string(b[:])
	}
}

// ValidCVRModulus11 reports whether a CVR passes the modulus-11 check
// (weights 2,7,6,5,4,3,2,1). Generated CVRs always do; Validate does not
// require it.
func ValidCVRModulus11(s string) bool {
	if !ValidCVR(s) {
		return false
	}
	w := [8]int{2, 7, 6, 5, 4, 3, 2, 1}
	sum := 0
	for i := 0; i < 8; i++ {
		sum += int(s[i]-'0') * w[i]
	}
	return sum%11 == 0
}

// Change files: a stream of records a loader replays into memo.registry
// (memoflow gen registry --out, --replay). Format: the 8 bytes
// "MFREG001", then per record uvarint key length, key, uvarint value
// length plus one (0: a tombstone), value.
const fileMagic = "MFREG001"

// ChangeWriter writes a change file.
type ChangeWriter struct {
	w   *bufio.Writer
	buf []byte
	n   int
}

// NewChangeWriter starts a change file on w. Flush at the end.
func NewChangeWriter(w io.Writer) (*ChangeWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(fileMagic); err != nil {
		return nil, err
	}
	return &ChangeWriter{w: bw}, nil
}

// Write appends one change.
func (cw *ChangeWriter) Write(c Change) error {
	b := cw.buf[:0]
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	if c.Entity == nil {
		b = append(b, 0)
	} else {
		start := len(b)
		b = append(b, make([]byte, binary.MaxVarintLen64)...)
		vStart := len(b)
		b = c.AppendValue(b)
		vLen := len(b) - vStart
		// Move the value right after its length.
		n := binary.PutUvarint(b[start:], uint64(vLen)+1)
		copy(b[start+n:], b[vStart:])
		b = b[:start+n+vLen]
	}
	cw.buf = b
	cw.n++
	_, err := cw.w.Write(b)
	return err
}

// Count is the number of changes written.
func (cw *ChangeWriter) Count() int { return cw.n }

// Flush writes what is buffered.
func (cw *ChangeWriter) Flush() error { return cw.w.Flush() }

// ReadChangeFile calls fn with the key and value (nil: tombstone) of every
// record of a change file; the slices are only valid during the call.
func ReadChangeFile(r io.Reader, fn func(key, value []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(fileMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != fileMagic {
		return fmt.Errorf("%w: not a memoflow registry change file", ErrMalformed)
	}
	var key, val []byte
	for {
		kl, err := binary.ReadUvarint(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil || kl > 1<<16 {
			return fmt.Errorf("%w: bad key length", ErrMalformed)
		}
		key = append(key[:0], make([]byte, kl)...)
		if _, err := io.ReadFull(br, key); err != nil {
			return fmt.Errorf("%w: truncated key", ErrMalformed)
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil || vl > 1<<24 {
			return fmt.Errorf("%w: bad value length", ErrMalformed)
		}
		var v []byte
		if vl > 0 {
			val = append(val[:0], make([]byte, vl-1)...)
			if _, err := io.ReadFull(br, val); err != nil {
				return fmt.Errorf("%w: truncated value", ErrMalformed)
			}
			v = val
		}
		if err := fn(key, v); err != nil {
			return err
		}
	}
}
