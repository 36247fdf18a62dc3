package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/events"
)

// Writer validates changes and produces them to memo.registry, with their
// events to memo.events, and returns after Kafka acknowledged every record.
// The client must be an idempotent producer with acks=all (franz-go's
// default; do not set kgo.DisableIdempotentWrite or fewer acks).
//
// A Write is validated as a whole before anything is produced: one bad
// change and nothing is written. It is not atomic on the broker side (no
// transaction): if producing fails half-way, some changes are in and the
// error says so; writing the same changes again is harmless, since every
// change is a full entity under its key.
type Writer struct {
	cl         *kgo.Client
	view       *View
	pseudo     *events.Pseudonymizer
	topic      string
	eventTopic string
	noEvents   bool
}

// WriterOption configures a Writer.
type WriterOption func(*Writer)

// WithPseudonymizer makes citizens' and companies' change events carry the
// recipient (pseudonymised). Without it they carry none.
func WithPseudonymizer(p *events.Pseudonymizer) WriterOption { return func(w *Writer) { w.pseudo = p } }

// WithoutEvents writes no events (bulk loads of synthetic data and the demo
// seed, which are not administrative actions).
func WithoutEvents() WriterOption { return func(w *Writer) { w.noEvents = true } }

// WithTopics overrides memo.registry and memo.events (tests).
func WithTopics(registry, events string) WriterOption {
	return func(w *Writer) { w.topic, w.eventTopic = registry, events }
}

// NewWriter returns a Writer producing with cl and checking cross-entity
// rules against view (which must be caught up; nil skips those checks).
func NewWriter(cl *kgo.Client, view *View, opts ...WriterOption) *Writer {
	w := &Writer{cl: cl, view: view, topic: "memo.registry", eventTopic: "memo.events"}
	for _, o := range opts {
		o(w)
	}
	return w
}

// BatchError says which change of a Write failed validation.
type BatchError struct {
	Index int
	Key   string
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("change %d (%s): %v", e.Index, e.Key, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// Put writes entities as changes by actor, now.
func (w *Writer) Put(ctx context.Context, actor string, es ...Entity) error {
	now := time.Now().UTC()
	cs := make([]Change, len(es))
	for i, e := range es {
		cs[i] = NewChange(e, actor, now)
	}
	return w.Write(ctx, cs...)
}

// Delete writes tombstones for keys by actor, now.
func (w *Writer) Delete(ctx context.Context, actor string, keys ...string) error {
	now := time.Now().UTC()
	cs := make([]Change, len(keys))
	for i, k := range keys {
		cs[i] = NewDelete(k, actor, now)
	}
	return w.Write(ctx, cs...)
}

// Write validates every change, produces them and their events, waits for
// the acks, and (when the View tails the topic) until the View has read
// them, so the caller reads its own writes.
func (w *Writer) Write(ctx context.Context, cs ...Change) error {
	if err := w.Check(cs...); err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, 2*len(cs))
	for _, c := range cs {
		recs = append(recs, c.Record(w.topic))
	}
	if !w.noEvents {
		for i := range cs {
			recs = append(recs, events.NewRecord(w.eventTopic, ChangeEvent(&cs[i], w.pseudo)))
		}
	}
	res := w.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		n := 0
		for _, r := range res {
			if r.Err == nil && r.Record.Topic == w.topic {
				n++
			}
		}
		return fmt.Errorf("registry: produce: %d of %d changes written: %w", n, len(cs), err)
	}
	if w.view == nil {
		return nil
	}
	if w.view.cl == nil {
		w.view.Apply(cs...)
		return nil
	}
	offsets := map[int32]int64{}
	for _, r := range res {
		if r.Record.Topic == w.topic && r.Record.Offset >= offsets[r.Record.Partition] {
			offsets[r.Record.Partition] = r.Record.Offset
		}
	}
	return w.view.WaitFor(ctx, offsets)
}

// Check validates changes without writing: each on its own, then the rules
// across entities against the View and the batch itself (references exist;
// at most 4 + 1 recipient systems per authority and 1 per company).
func (w *Writer) Check(cs ...Change) error {
	batch := make(map[string]Entity, len(cs))
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			return &BatchError{Index: i, Key: c.Key, Err: err}
		}
		batch[c.Key] = c.Entity // nil for deletes: deleted in the batch
	}
	if w.view == nil {
		return nil
	}
	lookup := func(key string) (Entity, bool) {
		if e, ok := batch[key]; ok {
			return e, e != nil
		}
		e := w.view.entity(key)
		return e, e != nil
	}
	for i, c := range cs {
		if err := checkRefs(c.Entity, lookup); err != nil {
			return &BatchError{Index: i, Key: c.Key, Err: err}
		}
		if err := w.checkSelected(c, batch); err != nil {
			return &BatchError{Index: i, Key: c.Key, Err: err}
		}
	}
	// System limits per organisation, after the batch.
	perOrg := map[string]map[string]*System{}
	for _, c := range cs {
		var org string
		switch e := c.Entity.(type) {
		case *System:
			org = e.Org
		case nil:
			if old, ok := w.view.entity(c.Key).(*System); ok {
				org = old.Org
			}
		}
		if org == "" || perOrg[org] != nil {
			continue
		}
		m := map[string]*System{}
		for _, s := range w.view.OrgSystems(org) {
			m[s.ID] = s
		}
		perOrg[org] = m
	}
	for _, c := range cs {
		switch e := c.Entity.(type) {
		case *System:
			for _, m := range perOrg {
				delete(m, e.ID) // moved between organisations
			}
			if e.SysKind == SystemRecipient {
				perOrg[e.Org][e.ID] = e
			}
		case nil:
			for _, m := range perOrg {
				delete(m, c.Key[len("sys/"):])
			}
		}
	}
	for i, c := range cs {
		s, ok := c.Entity.(*System)
		if !ok || s.SysKind != SystemRecipient {
			continue
		}
		regular, cvr := 0, 0
		for _, x := range perOrg[s.Org] {
			if x.Role == RoleCVRPost {
				cvr++
			} else {
				regular++
			}
		}
		o, _ := lookup("org/" + s.Org)
		if org, _ := o.(*Org); org != nil && org.Type == OrgAuthority {
			if regular > MaxAuthoritySystems || cvr > MaxAuthorityCVRPost {
				return &BatchError{Index: i, Key: c.Key, Err: errf(CodeTooManySystems, "org",
					"authority %s would have %d recipient systems and %d CVR-post systems; at most %d + %d", s.Org, regular, cvr, MaxAuthoritySystems, MaxAuthorityCVRPost)}
			}
		} else if regular+cvr > MaxCompanySystems {
			return &BatchError{Index: i, Key: c.Key, Err: errf(CodeTooManySystems, "org",
				"company %s would have %d recipient systems; at most %d", s.Org, regular+cvr, MaxCompanySystems)}
		}
	}
	return nil
}

// checkRefs checks that what e names exists.
func checkRefs(e Entity, lookup func(string) (Entity, bool)) error {
	need := func(field, key string, kind Kind) error {
		if _, ok := lookup(key); !ok {
			return errf(CodeUnknownEntity, field, "%s %q does not exist; create it first (or in the same import)", kind, key[len(kindPrefix[kind]):])
		}
		return nil
	}
	authority := func(cvr string) error {
		o, ok := lookup("org/" + cvr)
		if org, _ := o.(*Org); !ok || org.Type != OrgAuthority {
			return errf(CodeUnknownEntity, "org", "%s is not a registered authority; contact structures belong to authorities", cvr)
		}
		return nil
	}
	switch e := e.(type) {
	case *SenderSystem:
		return need("org", "org/"+e.Org, KindOrg)
	case *System:
		if e.SysKind == SystemRecipient || e.SysKind == SystemStandard {
			if err := need("org", "org/"+e.Org, KindOrg); err != nil {
				return err
			}
		}
		if e.Template != "" {
			t, ok := lookup("sys/" + e.Template)
			if ts, _ := t.(*System); !ok || ts.SysKind != SystemStandard {
				return errf(CodeBadTemplate, "template", "%q is not a standard system; a supplier registers it first (kind standard)", e.Template)
			}
		}
	case *ContactGroup:
		if err := authority(e.Org); err != nil {
			return err
		}
		if e.ParentID != "" {
			return need("parent_id", "cg/"+e.ParentID, KindContactGroup)
		}
	case *ContactPoint:
		if err := authority(e.Org); err != nil {
			return err
		}
		if e.ParentID != "" {
			if err := need("parent_id", "cg/"+e.ParentID, KindContactGroup); err != nil {
				return err
			}
		}
		if e.System != "" {
			return need("system", "sys/"+e.System, KindSystem)
		}
	case *LegacyMailbox:
		if err := authority(e.Org); err != nil {
			return err
		}
		if e.ContactPoint != "" {
			return need("contact_point", "cp/"+e.ContactPoint, KindContactPoint)
		}
	case *Citizen:
		if e.Mailbox != "" {
			return need("mailbox", "sys/"+e.Mailbox, KindSystem)
		}
	case *Company:
		if e.Mailbox != "" {
			if err := need("mailbox", "sys/"+e.Mailbox, KindSystem); err != nil {
				return err
			}
		}
		if e.System != "" {
			return need("system", "sys/"+e.System, KindSystem)
		}
	}
	return nil
}

// entity returns the View's entity under key (nil if none). Citizens and
// companies come back rebuilt from their packed form.
func (v *View) entity(key string) Entity {
	kind := KindOfKey(key)
	if kind == 0 {
		return nil
	}
	id := key[len(kindPrefix[kind]):]
	switch kind {
	case KindOrg:
		if o := v.Org(id); o != nil {
			return o
		}
	case KindSenderSystem:
		if s := v.SenderSystem(id); s != nil {
			return s
		}
	case KindSystem:
		if s := v.System(id); s != nil {
			return s
		}
	case KindContactGroup:
		if g := v.ContactGroup(id); g != nil {
			return g
		}
	case KindContactPoint:
		if p := v.ContactPoint(id); p != nil {
			return p
		}
	case KindLegacyMailbox:
		v.mu.RLock()
		defer v.mu.RUnlock()
		for k, l := range v.legacy {
			if LegacyKey(k.org, k.mailbox, k.subject) == key {
				return l
			}
		}
	case KindCitizen:
		if c, ok := v.Citizen(id); ok {
			return &Citizen{CPR: id, Status: c.Status, NemSMS: c.NemSMS, Mailbox: c.MailboxID}
		}
	case KindCompany:
		if c, ok := v.Company(id); ok {
			return &Company{CVR: id, Status: c.Status, Mailbox: c.MailboxID, System: c.SystemID, Forward: c.Forward}
		}
	}
	return nil
}

// checkSelected refuses to delete a standard system, or to turn it into
// another kind, while an authority's system still selects it (after the
// batch): that authority's post would have nowhere to go.
func (w *Writer) checkSelected(c Change, batch map[string]Entity) error {
	if KindOfKey(c.Key) != KindSystem {
		return nil
	}
	if s, ok := c.Entity.(*System); ok && s.SysKind == SystemStandard {
		return nil
	}
	id := c.Key[len("sys/"):]
	old, _ := w.view.entity(c.Key).(*System)
	if old == nil || old.SysKind != SystemStandard {
		return nil
	}
	for _, sel := range w.view.Selections(id) {
		e, inBatch := batch["sys/"+sel]
		if !inBatch {
			return errf(CodeBadTemplate, "template", "standard system %q is selected by system %q; the authority must select another first", id, sel)
		}
		if s, _ := e.(*System); s != nil && s.Template == id {
			return errf(CodeBadTemplate, "template", "standard system %q is selected by system %q; the authority must select another first", id, sel)
		}
	}
	return nil
}
