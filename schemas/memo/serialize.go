package memo

import (
	"errors"
	"unicode/utf8"
)

// Serialize appends the canonical XML of m to dst: an XML declaration, the
// namespaces the message uses declared on the root with fixed prefixes
// (memo, grd, kle, form, dmv, gln, udd, sor), one element per line indented
// by tabs, text escaped. File content is copied byte for byte from the
// parsed input (or Content.Inline), never decoded or re-encoded.
//
// Serialize writes what the model holds; run Validate first if the model
// was built or changed in code.
func Serialize(dst []byte, m *Message) ([]byte, error) {
	w := serializer{b: dst, src: m.src}
	var used uint32 = 1 << nsMemo
	w.usedNS(ctMessage, m, &used)
	w.b = append(w.b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<memo:Message"...)
	for ns := nsMemo; ns <= nsSor; ns++ {
		if used&(1<<ns) != 0 {
			w.b = append(w.b, " xmlns:"...)
			w.b = append(w.b, nsPrefix[ns]...)
			w.b = append(w.b, `="`...)
			w.b = append(w.b, nsURI[ns]...)
			w.b = append(w.b, '"')
		}
	}
	mv := m.MemoVersion.Value
	if !m.MemoVersion.Set {
		mv = m.Version.String()
	}
	w.attr("memoVersion", mv)
	if m.MemoSchVersion.Set {
		w.attr("memoSchVersion", m.MemoSchVersion.Value)
	}
	w.b = append(w.b, '>')
	w.complex(ctMessage, m, 1)
	w.b = append(w.b, "\n</memo:Message>\n"...)
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// ErrContentOutOfRange means a File's content offsets do not fit the
// message's source bytes (a model built in code without Content.Inline).
var ErrContentOutOfRange = errors.New("memo: File content offsets outside the source message")

type serializer struct {
	b   []byte
	src []byte
	err error
}

func (w *serializer) usedNS(ct *ctype, obj any, used *uint32) {
	for i := range ct.parts {
		p := &ct.parts[i]
		if p.isLeaf() {
			if p.opt != nil && !p.opt(obj).Set {
				continue
			}
			*used |= 1 << p.ns
			continue
		}
		n := p.count(obj)
		if n > 0 {
			*used |= 1 << p.ns
		}
		for k := 0; k < n; k++ {
			w.usedNS(p.ct, p.child(obj, k), used)
		}
	}
}

func (w *serializer) indent(depth int) {
	w.b = append(w.b, '\n')
	for i := 0; i < depth; i++ {
		w.b = append(w.b, '\t')
	}
}

func (w *serializer) open(p *particle) {
	w.b = append(w.b, '<')
	w.b = append(w.b, nsPrefix[p.ns]...)
	w.b = append(w.b, ':')
	w.b = append(w.b, p.name...)
	w.b = append(w.b, '>')
}

func (w *serializer) close(p *particle) {
	w.b = append(w.b, "</"...)
	w.b = append(w.b, nsPrefix[p.ns]...)
	w.b = append(w.b, ':')
	w.b = append(w.b, p.name...)
	w.b = append(w.b, '>')
}

// complex writes obj's children, all of them: an element its version does
// not allow is written too, so Validate of the output reports it rather
// than it vanishing (Downconvert removes such elements and says so).
func (w *serializer) complex(ct *ctype, obj any, depth int) {
	for i := range ct.parts {
		p := &ct.parts[i]
		switch {
		case p.content != nil:
			c := p.content(obj)
			w.indent(depth)
			w.open(p)
			raw := c.Raw(w.src)
			if raw == nil && c.Length > 0 {
				w.err = ErrContentOutOfRange
			}
			w.b = append(w.b, raw...)
			w.close(p)
		case p.isLeaf():
			var v string
			if p.str != nil {
				v = *p.str(obj)
			} else {
				o := p.opt(obj)
				if !o.Set {
					continue
				}
				v = o.Value
			}
			w.indent(depth)
			w.open(p)
			w.text(v)
			w.close(p)
		default:
			n := p.count(obj)
			for k := 0; k < n; k++ {
				w.indent(depth)
				w.open(p)
				w.complex(p.ct, p.child(obj, k), depth+1)
				w.indent(depth)
				w.close(p)
			}
		}
	}
}

// text escapes element content. '>' is escaped so "]]>" cannot appear and
// CR as a reference so it survives line-end normalization.
func (w *serializer) text(s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		w.b = append(w.b, s[last:i]...)
		w.b = append(w.b, esc...)
		last = i + 1
	}
	w.b = append(w.b, s[last:]...)
}

func (w *serializer) attr(name, v string) {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, `="`...)
	last := 0
	for i := 0; i < len(v); i++ {
		var esc string
		switch v[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#9;"
		case '\n':
			esc = "&#10;"
		case '\r':
			esc = "&#13;"
		default:
			continue
		}
		w.b = append(w.b, v[last:i]...)
		w.b = append(w.b, esc...)
		last = i + 1
	}
	w.b = append(w.b, v[last:]...)
	w.b = append(w.b, '"')
}

// LossCode names something MeMo 1.1 cannot express.
type LossCode string

const (
	// LossRepresentative: Sender/Representative (1.2 only) was dropped.
	LossRepresentative LossCode = "LOSS_REPRESENTATIVE"
	// LossOriginalRepresentative: ForwardData/originalRepresentative (1.2 only) was dropped.
	LossOriginalRepresentative LossCode = "LOSS_ORIGINAL_REPRESENTATIVE"
	// LossNotificationTruncated: notification was cut from up to 160 to 150 characters.
	LossNotificationTruncated LossCode = "LOSS_NOTIFICATION_TRUNCATED"
)

// LossCatalogue describes every LossCode (docs/memo-errors.md lists them).
var LossCatalogue = []struct {
	Code        LossCode
	Description string
}{
	{LossRepresentative, "Sender/Representative exists only in MeMo 1.2; the 1.1 message does not say who sends on the authority's behalf."},
	{LossOriginalRepresentative, "ForwardData/originalRepresentative exists only in MeMo 1.2; the 1.1 message does not name the original representative."},
	{LossNotificationTruncated, "The 1.2 schema allows a notification of 160 characters, the 1.1 schema 150; the text was cut to 150 characters."},
}

// Loss is one thing a down-conversion could not carry over. Value is what
// was dropped, so the caller can log it or refuse the conversion.
type Loss struct {
	Code    LossCode
	Path    string
	Value   string
	Message string
}

// Downconvert converts a MeMo 1.2 message to 1.1: memoVersion 1.1 with
// memoSchVersion 1.1.0, mandatory and legalNotification written out with
// their default (false) when absent, and every 1.2-only item removed and
// reported as a Loss. Nothing is dropped without a Loss; the caller decides
// whether the losses are acceptable. A message that already follows 1.1 is
// returned as it is. The result shares unchanged parts (and the source
// bytes its attachments are copied from) with m.
func Downconvert(m *Message) (*Message, []Loss) {
	if m.Rules() == Version11 {
		return m, nil
	}
	out := *m
	out.MemoVersion = Some("1.1")
	out.Version, out.rules = Version11, Version11
	out.MemoSchVersion = Some(MemoSchVersion11)
	out.docErrs = nil
	var losses []Loss
	h := &out.Header
	if !h.Mandatory.Set {
		h.Mandatory = Some("false")
	}
	if !h.LegalNotification.Set {
		h.LegalNotification = Some("false")
	}
	if r := h.Sender.Representative; r != nil {
		losses = append(losses, Loss{
			Code: LossRepresentative, Path: "/Message/MessageHeader/Sender/Representative",
			Value:   joinSet(r.RepresentativeID, r.IDType, r.IDTypeLabel, r.Label),
			Message: "Sender/Representative has no place in MeMo 1.1",
		})
		h.Sender.Representative = nil
	}
	if f := h.ForwardData; f != nil && f.OriginalRepresentative.Set {
		nf := *f
		losses = append(losses, Loss{
			Code: LossOriginalRepresentative, Path: "/Message/MessageHeader/ForwardData/originalRepresentative",
			Value: nf.OriginalRepresentative.Value, Message: "ForwardData/originalRepresentative has no place in MeMo 1.1",
		})
		nf.OriginalRepresentative = Opt{}
		h.ForwardData = &nf
	}
	if h.Notification.Set && charLen(h.Notification.Value) > 150 {
		v := h.Notification.Value
		cut := 0
		for i := 0; i < 150; i++ {
			_, n := utf8.DecodeRuneInString(v[cut:])
			cut += n
		}
		losses = append(losses, Loss{
			Code: LossNotificationTruncated, Path: "/Message/MessageHeader/notification",
			Value: v[cut:], Message: "notification cut to the 150 characters MeMo 1.1 allows",
		})
		h.Notification = Some(v[:cut])
	}
	return &out, losses
}

func joinSet(os ...Opt) string {
	var b []byte
	for _, o := range os {
		if !o.Set {
			continue
		}
		if len(b) > 0 {
			b = append(b, " / "...)
		}
		b = append(b, o.Value...)
	}
	return string(b)
}

// ForRecipient returns the bytes to deliver to a recipient system that
// receives MeMo version want. MeMo is never altered in transit, so that is
// src itself unless want is 1.1 and the message is 1.2: then it is the
// down-converted message, with its losses. (A 1.1 message goes to a 1.2
// recipient unchanged: NgDP supports both versions side by side.)
func ForRecipient(src []byte, m *Message, want Version) ([]byte, []Loss, error) {
	if want != Version11 || m.Rules() != Version12 {
		return src, nil, nil
	}
	if m.src == nil {
		m.src = src
	}
	out, losses := Downconvert(m)
	b, err := Serialize(make([]byte, 0, len(src)+256), out)
	return b, losses, err
}

// NewMessage returns an empty message of version v with its root
// attributes set, for building messages in code.
func NewMessage(v Version) *Message {
	m := &Message{Version: v, rules: v, MemoVersion: Some(v.String())}
	if v == Version11 {
		m.MemoSchVersion = Some(MemoSchVersion11)
	}
	return m
}
