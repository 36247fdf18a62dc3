package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/wire"
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
	dst = wire.AppendStr(dst, c.Actor)
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
	d := wire.Decoder{B: b, Malformed: ErrMalformed}
	var c Change
	if f := d.Byte(); f != formatV1 {
		if d.Err != nil {
			return c, d.Err
		}
		return c, fmt.Errorf("%w: unknown format %d", ErrMalformed, f)
	}
	kind := Kind(d.Byte())
	c.Time = time.UnixMilli(d.Varint()).UTC()
	c.Actor = d.Str(1 << 16)
	var e Entity
	switch kind {
	case KindOrg:
		o := &Org{}
		o.CVR = d.Str(1 << 16)
		o.Name = d.Str(1 << 16)
		o.Type = OrgKind(d.Byte())
		o.Setup = d.Byte()
		e = o
	case KindSenderSystem:
		s := &SenderSystem{}
		s.ID = d.Str(1 << 16)
		s.Org = d.Str(1 << 16)
		s.Name = d.Str(1 << 16)
		s.TokenSHA256 = d.Strs(1 << 16)
		s.ReceiptEndpoint = d.Str(1 << 16)
		s.Active = d.Byte() != 0
		e = s
	case KindSystem:
		s := &System{}
		s.ID = d.Str(1 << 16)
		s.Org = d.Str(1 << 16)
		s.Name = d.Str(1 << 16)
		s.SysKind = SystemKind(d.Byte())
		s.Protocol = Protocol(d.Byte())
		s.Endpoint = d.Str(1 << 16)
		s.Credentials = d.Str(1 << 16)
		s.ReceiptEndpoint = d.Str(1 << 16)
		s.MemoVersion = d.Byte()
		s.Deactivated = d.Byte() != 0
		s.Contact.Name = d.Str(1 << 16)
		s.Contact.Email = d.Str(1 << 16)
		s.Role = Role(d.Byte())
		if len(d.B) > 0 {
			// Fields added after the first format, written only when set.
			s.SFTPUser = d.Str(1 << 16)
			s.SSHHostKey = d.Str(1 << 16)
			s.Folder = d.Str(1 << 16)
			s.ReceiptFolder = d.Str(1 << 16)
			s.SMTPAddress = d.Str(1 << 16)
			s.Certificate = d.Str(1 << 17)
			s.Template = d.Str(1 << 16)
		}
		e = s
	case KindContactGroup:
		g := &ContactGroup{}
		g.ID = d.Str(1 << 16)
		g.ParentID = d.Str(1 << 16)
		g.Org = d.Str(1 << 16)
		g.Name = d.Str(1 << 16)
		g.Keywords = d.Strs(1 << 16)
		g.Visibility = Visibility(d.Byte())
		e = g
	case KindContactPoint:
		p := &ContactPoint{}
		p.ID = d.Str(1 << 16)
		p.ParentID = d.Str(1 << 16)
		p.Org = d.Str(1 << 16)
		p.Name = d.Str(1 << 16)
		p.Keywords = d.Strs(1 << 16)
		p.KLE = d.Strs(1 << 16)
		p.FORM = d.Strs(1 << 16)
		p.EAN = d.Strs(1 << 16)
		p.SOR = d.Strs(1 << 16)
		p.Visibility = Visibility(d.Byte())
		if n := d.Uvarint(MaxInfoFields + 1); n > 0 {
			p.Info = make([]InfoField, n)
			for i := range p.Info {
				p.Info[i].Title = d.Str(1 << 16)
				p.Info[i].Text = d.Str(1 << 16)
			}
		}
		p.System = d.Str(1 << 16)
		e = p
	case KindLegacyMailbox:
		l := &LegacyMailbox{}
		l.Org = d.Str(1 << 16)
		l.Mailbox = d.Str(1 << 16)
		l.Subject = d.Str(1 << 16)
		l.ContactPoint = d.Str(1 << 16)
		e = l
	case KindCitizen:
		ci := &Citizen{}
		ci.CPR = cprString(d.Uvarint(1e10))
		f := d.Byte()
		ci.Status = Registration(f & 3)
		ci.NemSMS = f&4 != 0
		ci.Mailbox = d.Str(1 << 16)
		e = ci
	case KindCompany:
		co := &Company{}
		co.CVR = d.Str(1 << 16)
		co.Status = Registration(d.Byte())
		co.Mailbox = d.Str(1 << 16)
		co.System = d.Str(1 << 16)
		if len(d.B) > 0 {
			co.Forward.Kind = ForwardKind(d.Byte())
			co.Forward.To = d.Str(1 << 16)
			co.Forward.Credentials = d.Str(1 << 16)
		}
		e = co
	default:
		if d.Err == nil {
			return c, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
		}
	}
	if d.Err != nil {
		return c, d.Err
	}
	if len(d.B) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.B))
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
	dst = wire.AppendStr(dst, o.CVR)
	dst = wire.AppendStr(dst, o.Name)
	return append(dst, byte(o.Type), o.Setup)
}

func (s *SenderSystem) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, s.ID)
	dst = wire.AppendStr(dst, s.Org)
	dst = wire.AppendStr(dst, s.Name)
	dst = wire.AppendStrs(dst, s.TokenSHA256)
	dst = wire.AppendStr(dst, s.ReceiptEndpoint)
	return append(dst, b2u(s.Active))
}

func (s *System) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, s.ID)
	dst = wire.AppendStr(dst, s.Org)
	dst = wire.AppendStr(dst, s.Name)
	dst = append(dst, byte(s.SysKind), byte(s.Protocol))
	dst = wire.AppendStr(dst, s.Endpoint)
	dst = wire.AppendStr(dst, s.Credentials)
	dst = wire.AppendStr(dst, s.ReceiptEndpoint)
	dst = append(dst, s.MemoVersion, b2u(s.Deactivated))
	dst = wire.AppendStr(dst, s.Contact.Name)
	dst = wire.AppendStr(dst, s.Contact.Email)
	dst = append(dst, byte(s.Role))
	if !s.hasExt() {
		return dst
	}
	dst = wire.AppendStr(dst, s.SFTPUser)
	dst = wire.AppendStr(dst, s.SSHHostKey)
	dst = wire.AppendStr(dst, s.Folder)
	dst = wire.AppendStr(dst, s.ReceiptFolder)
	dst = wire.AppendStr(dst, s.SMTPAddress)
	dst = wire.AppendStr(dst, s.Certificate)
	return wire.AppendStr(dst, s.Template)
}

func (g *ContactGroup) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, g.ID)
	dst = wire.AppendStr(dst, g.ParentID)
	dst = wire.AppendStr(dst, g.Org)
	dst = wire.AppendStr(dst, g.Name)
	dst = wire.AppendStrs(dst, g.Keywords)
	return append(dst, byte(g.Visibility))
}

func (p *ContactPoint) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, p.ID)
	dst = wire.AppendStr(dst, p.ParentID)
	dst = wire.AppendStr(dst, p.Org)
	dst = wire.AppendStr(dst, p.Name)
	dst = wire.AppendStrs(dst, p.Keywords)
	dst = wire.AppendStrs(dst, p.KLE)
	dst = wire.AppendStrs(dst, p.FORM)
	dst = wire.AppendStrs(dst, p.EAN)
	dst = wire.AppendStrs(dst, p.SOR)
	dst = append(dst, byte(p.Visibility))
	dst = binary.AppendUvarint(dst, uint64(len(p.Info)))
	for _, f := range p.Info {
		dst = wire.AppendStr(dst, f.Title)
		dst = wire.AppendStr(dst, f.Text)
	}
	return wire.AppendStr(dst, p.System)
}

func (l *LegacyMailbox) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, l.Org)
	dst = wire.AppendStr(dst, l.Mailbox)
	dst = wire.AppendStr(dst, l.Subject)
	return wire.AppendStr(dst, l.ContactPoint)
}

func (c *Citizen) appendTo(dst []byte) []byte {
	n, _ := CPRNumber(c.CPR)
	dst = binary.AppendUvarint(dst, n)
	f := byte(c.Status) & 3
	if c.NemSMS {
		f |= 4
	}
	dst = append(dst, f)
	return wire.AppendStr(dst, c.Mailbox)
}

func (c *Company) appendTo(dst []byte) []byte {
	dst = wire.AppendStr(dst, c.CVR)
	dst = append(dst, byte(c.Status))
	dst = wire.AppendStr(dst, c.Mailbox)
	dst = wire.AppendStr(dst, c.System)
	if !c.Forward.Set() && c.Forward.To == "" && c.Forward.Credentials == "" {
		return dst
	}
	dst = append(dst, byte(c.Forward.Kind))
	dst = wire.AppendStr(dst, c.Forward.To)
	return wire.AppendStr(dst, c.Forward.Credentials)
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
