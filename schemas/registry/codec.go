package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Change is the value of one memo.registry record: an entity as it is
// now, who changed it and when. Entity nil is a delete: the record is a
// tombstone (nil value) and the actor and time travel in headers, so
// compaction eventually forgets the key.
type Change struct {
	Key    string
	Entity Entity
	Actor  string
	Time   time.Time
}

// Deleted reports whether c removes its key.
func (c Change) Deleted() bool { return c.Entity == nil }

// Kind is the changed entity's kind (from the key for a delete).
func (c Change) Kind() Kind {
	if c.Entity != nil {
		return c.Entity.Kind()
	}
	return KindOfKey(c.Key)
}

// Validate checks the change: an actor, a key matching the entity, a
// valid entity.
func (c Change) Validate() error {
	if c.Actor == "" || len(c.Actor) > 256 {
		return errf(CodeBadActor, "actor", "every change names its actor (an admin user id or a tool name), 1-256 bytes")
	}
	if c.Entity == nil {
		if KindOfKey(c.Key) == 0 {
			return errf(CodeBadKind, "key", "%q has no known key prefix", c.Key)
		}
		return nil
	}
	if c.Key != c.Entity.Key() {
		return errf(CodeBadID, "key", "key %q does not match the entity's key %q", c.Key, c.Entity.Key())
	}
	return c.Entity.Validate()
}

// NewChange returns the change that puts e, by actor at t.
func NewChange(e Entity, actor string, t time.Time) Change {
	return Change{Key: e.Key(), Entity: e, Actor: actor, Time: t}
}

// NewDelete returns the change that deletes key.
func NewDelete(key, actor string, t time.Time) Change {
	return Change{Key: key, Actor: actor, Time: t}
}

// Header names on tombstones.
const (
	HeaderActor = "memoflow.actor"
	HeaderTime  = "memoflow.time" // Unix ms, decimal
)

// Record returns c as a memo.registry record.
func (c Change) Record(topic string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(c.Key)}
	if c.Entity == nil {
		r.Headers = []kgo.RecordHeader{
			{Key: HeaderActor, Value: []byte(c.Actor)},
			{Key: HeaderTime, Value: strconv.AppendInt(nil, c.Time.UnixMilli(), 10)},
		}
		return r
	}
	r.Value = c.AppendValue(make([]byte, 0, 64))
	return r
}

// The value, format 1:
//
//	byte    format (1)
//	byte    kind
//	varint  time, Unix ms
//	str     actor
//	...     the entity's fields in declaration order: strings and ids as
//	        str, string lists as uvarint count + str each, small enums and
//	        flags as one byte, a CPR as the uvarint of its number.
//
// str is a uvarint length and the bytes. Citizens take about 20 bytes plus
// the actor and the mailbox id.
const formatV1 = 1

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed memo.registry value")

// AppendValue appends c's value (c must not be a delete).
func (c Change) AppendValue(dst []byte) []byte {
	dst = append(dst, formatV1, byte(c.Entity.Kind()))
	dst = binary.AppendVarint(dst, c.Time.UnixMilli())
	dst = appendStr(dst, c.Actor)
	return c.Entity.appendTo(dst)
}

// DecodeRecord decodes a memo.registry record (a tombstone included).
func DecodeRecord(r *kgo.Record) (Change, error) {
	if r.Value == nil {
		c := Change{Key: string(r.Key)}
		for _, h := range r.Headers {
			switch h.Key {
			case HeaderActor:
				c.Actor = string(h.Value)
			case HeaderTime:
				if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
					c.Time = time.UnixMilli(ms).UTC()
				}
			}
		}
		if KindOfKey(c.Key) == 0 {
			return c, fmt.Errorf("%w: tombstone key %q has no known prefix", ErrMalformed, c.Key)
		}
		return c, nil
	}
	c, err := DecodeValue(r.Value)
	if err != nil {
		return c, err
	}
	if k := c.Entity.Key(); k != string(r.Key) {
		return c, fmt.Errorf("%w: record key %q but the value is %q", ErrMalformed, r.Key, k)
	}
	return c, nil
}

// DecodeValue decodes a non-tombstone value; Key is set from the entity.
func DecodeValue(b []byte) (Change, error) {
	d := decoder{b: b}
	var c Change
	if f := d.byte(); f != formatV1 {
		if d.err != nil {
			return c, d.err
		}
		return c, fmt.Errorf("%w: unknown format %d", ErrMalformed, f)
	}
	kind := Kind(d.byte())
	c.Time = time.UnixMilli(d.varint()).UTC()
	c.Actor = d.str()
	var e Entity
	switch kind {
	case KindOrg:
		o := &Org{}
		o.CVR = d.str()
		o.Name = d.str()
		o.Type = OrgKind(d.byte())
		o.Setup = d.byte()
		e = o
	case KindSenderSystem:
		s := &SenderSystem{}
		s.ID = d.str()
		s.Org = d.str()
		s.Name = d.str()
		s.TokenSHA256 = d.strs()
		s.ReceiptEndpoint = d.str()
		s.Active = d.byte() != 0
		e = s
	case KindSystem:
		s := &System{}
		s.ID = d.str()
		s.Org = d.str()
		s.Name = d.str()
		s.SysKind = SystemKind(d.byte())
		s.Protocol = Protocol(d.byte())
		s.Endpoint = d.str()
		s.Credentials = d.str()
		s.ReceiptEndpoint = d.str()
		s.MemoVersion = d.byte()
		s.Deactivated = d.byte() != 0
		s.Contact.Name = d.str()
		s.Contact.Email = d.str()
		s.Role = Role(d.byte())
		e = s
	case KindContactGroup:
		g := &ContactGroup{}
		g.ID = d.str()
		g.ParentID = d.str()
		g.Org = d.str()
		g.Name = d.str()
		g.Keywords = d.strs()
		g.Visibility = Visibility(d.byte())
		e = g
	case KindContactPoint:
		p := &ContactPoint{}
		p.ID = d.str()
		p.ParentID = d.str()
		p.Org = d.str()
		p.Name = d.str()
		p.Keywords = d.strs()
		p.KLE = d.strs()
		p.FORM = d.strs()
		p.EAN = d.strs()
		p.SOR = d.strs()
		p.Visibility = Visibility(d.byte())
		if n := d.uvarint(MaxInfoFields + 1); n > 0 {
			p.Info = make([]InfoField, n)
			for i := range p.Info {
				p.Info[i].Title = d.str()
				p.Info[i].Text = d.str()
			}
		}
		p.System = d.str()
		e = p
	case KindLegacyMailbox:
		l := &LegacyMailbox{}
		l.Org = d.str()
		l.Mailbox = d.str()
		l.Subject = d.str()
		l.ContactPoint = d.str()
		e = l
	case KindCitizen:
		ci := &Citizen{}
		ci.CPR = cprString(d.uvarint(1e10))
		f := d.byte()
		ci.Status = Registration(f & 3)
		ci.NemSMS = f&4 != 0
		ci.Mailbox = d.str()
		e = ci
	case KindCompany:
		co := &Company{}
		co.CVR = d.str()
		co.Status = Registration(d.byte())
		co.Mailbox = d.str()
		co.System = d.str()
		e = co
	default:
		if d.err == nil {
			return c, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
		}
	}
	if d.err != nil {
		return c, d.err
	}
	if len(d.b) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	c.Entity = e
	c.Key = e.Key()
	return c, nil
}

func cprString(n uint64) string {
	var b [10]byte
	for i := 9; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[:])
}

// CPRNumber returns a valid-shaped CPR as a number (ok false otherwise).
func CPRNumber(s string) (uint64, bool) {
	if len(s) != 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// CVRNumber returns an 8-digit CVR as a number (ok false otherwise).
func CVRNumber(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint32(c-'0')
	}
	return n, true
}

func (o *Org) appendTo(dst []byte) []byte {
	dst = appendStr(dst, o.CVR)
	dst = appendStr(dst, o.Name)
	return append(dst, byte(o.Type), o.Setup)
}

func (s *SenderSystem) appendTo(dst []byte) []byte {
	dst = appendStr(dst, s.ID)
	dst = appendStr(dst, s.Org)
	dst = appendStr(dst, s.Name)
	dst = appendStrs(dst, s.TokenSHA256)
	dst = appendStr(dst, s.ReceiptEndpoint)
	return append(dst, b2u(s.Active))
}

func (s *System) appendTo(dst []byte) []byte {
	dst = appendStr(dst, s.ID)
	dst = appendStr(dst, s.Org)
	dst = appendStr(dst, s.Name)
	dst = append(dst, byte(s.SysKind), byte(s.Protocol))
	dst = appendStr(dst, s.Endpoint)
	dst = appendStr(dst, s.Credentials)
	dst = appendStr(dst, s.ReceiptEndpoint)
	dst = append(dst, s.MemoVersion, b2u(s.Deactivated))
	dst = appendStr(dst, s.Contact.Name)
	dst = appendStr(dst, s.Contact.Email)
	return append(dst, byte(s.Role))
}

func (g *ContactGroup) appendTo(dst []byte) []byte {
	dst = appendStr(dst, g.ID)
	dst = appendStr(dst, g.ParentID)
	dst = appendStr(dst, g.Org)
	dst = appendStr(dst, g.Name)
	dst = appendStrs(dst, g.Keywords)
	return append(dst, byte(g.Visibility))
}

func (p *ContactPoint) appendTo(dst []byte) []byte {
	dst = appendStr(dst, p.ID)
	dst = appendStr(dst, p.ParentID)
	dst = appendStr(dst, p.Org)
	dst = appendStr(dst, p.Name)
	dst = appendStrs(dst, p.Keywords)
	dst = appendStrs(dst, p.KLE)
	dst = appendStrs(dst, p.FORM)
	dst = appendStrs(dst, p.EAN)
	dst = appendStrs(dst, p.SOR)
	dst = append(dst, byte(p.Visibility))
	dst = binary.AppendUvarint(dst, uint64(len(p.Info)))
	for _, f := range p.Info {
		dst = appendStr(dst, f.Title)
		dst = appendStr(dst, f.Text)
	}
	return appendStr(dst, p.System)
}

func (l *LegacyMailbox) appendTo(dst []byte) []byte {
	dst = appendStr(dst, l.Org)
	dst = appendStr(dst, l.Mailbox)
	dst = appendStr(dst, l.Subject)
	return appendStr(dst, l.ContactPoint)
}

func (c *Citizen) appendTo(dst []byte) []byte {
	n, _ := CPRNumber(c.CPR)
	dst = binary.AppendUvarint(dst, n)
	f := byte(c.Status) & 3
	if c.NemSMS {
		f |= 4
	}
	dst = append(dst, f)
	return appendStr(dst, c.Mailbox)
}

func (c *Company) appendTo(dst []byte) []byte {
	dst = appendStr(dst, c.CVR)
	dst = append(dst, byte(c.Status))
	dst = appendStr(dst, c.Mailbox)
	return appendStr(dst, c.System)
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrs(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendStr(dst, s)
	}
	return dst
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	if v >= limit {
		d.fail("value out of range")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next str without copying.
func (d *decoder) bytes() []byte {
	n := d.uvarint(1 << 16)
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// strs bounds the count by what remains, so a corrupt count cannot make it
// allocate without limit.
func (d *decoder) strs() []string {
	n := d.uvarint(uint64(len(d.b)) + 1)
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}
