package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/wire"
)

// View is the registry materialised in memory: it reads memo.registry from
// the start with its own client (no consumer group: every instance needs
// every partition), applies every change, reports when it has caught up
// with the high-water marks it saw at start, and keeps tailing so a change
// reaches its readers within a poll (milliseconds to seconds).
//
// Lookups take a read lock and allocate nothing; the returned entities are
// immutable (a change replaces the pointer), so they stay valid after the
// lock is released. Citizens are packed into a cprTable (8 B per slot),
// companies into a map of small structs, and system ids are interned as
// small ints so a citizen costs no string.
type View struct {
	log   *slog.Logger
	topic string

	mu        sync.RWMutex
	citizens  cprTable
	companies map[uint32]companyRec
	forwards  map[uint32]Forwarding // the few companies that forward their post
	orgs      map[string]*Org
	senders   map[string]*SenderSystem
	groups    map[string]*ContactGroup
	points    map[string]*ContactPoint
	legacy    map[legacyKey]*LegacyMailbox
	// Systems are interned: sysIdx maps an id to its index in names and
	// systems; systems[i] is nil until the system's record is read (a
	// citizen may arrive before its mailbox provider: compaction keeps no
	// order across keys) or after it is deleted.
	sysIdx  map[string]uint32
	names   []string
	systems []*System
	orgSys  map[string][]uint32 // organisation CVR -> its recipient systems
	sms     *System
	print   *System

	// Tailing state.
	cl      *kgo.Client
	adm     *kadm.Client
	cancel  context.CancelFunc
	done    chan struct{}
	caught  chan struct{}
	target  map[int32]int64 // high-water marks at start
	next    map[int32]int64 // per partition: the offset after the last record read
	applied atomic.Int64
	bad     atomic.Int64
	err     atomic.Pointer[error]
	changed func(Change) // test and metrics hook, called under the lock for non-citizen changes
}

type companyRec struct {
	mailbox uint32 // system index (0: none)
	system  uint32 // own recipient system index (0: none)
	status  Registration
}

type legacyKey struct{ org, mailbox, subject string }

// Citizen value bits in the cprTable.
const (
	citSysMask   = 1<<22 - 1
	citExempt    = 1 << 22
	citNemSMS    = 1 << 23
	maxSystemIdx = citSysMask
)

// ViewOption configures a View.
type ViewOption func(*View)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) ViewOption { return func(v *View) { v.log = l } }

// WithTopic reads another topic than memo.registry (tests).
func WithTopic(t string) ViewOption { return func(v *View) { v.topic = t } }

// WithCitizenCapacity sizes the citizen table for n citizens at once, so a
// known-size load does not rehash on the way.
func WithCitizenCapacity(n int) ViewOption { return func(v *View) { v.citizens.reserve(n) } }

// OnChange calls f for every change applied except citizens and companies
// (those come by the million), under the View's lock: f must be quick.
func OnChange(f func(Change)) ViewOption { return func(v *View) { v.changed = f } }

// NewMemView returns an empty View that reads no topic: tests and tools
// fill it with Apply.
func NewMemView(opts ...ViewOption) *View {
	v := &View{
		log: slog.Default(), topic: "memo.registry",
		companies: map[uint32]companyRec{}, forwards: map[uint32]Forwarding{}, orgs: map[string]*Org{}, senders: map[string]*SenderSystem{},
		groups: map[string]*ContactGroup{}, points: map[string]*ContactPoint{}, legacy: map[legacyKey]*LegacyMailbox{},
		sysIdx: map[string]uint32{}, names: []string{""}, systems: []*System{nil}, orgSys: map[string][]uint32{},
		caught: make(chan struct{}), next: map[int32]int64{},
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

// NewView starts reading the registry topic with a client built from opts
// (brokers, TLS, SASL; the View adds its consume options). Close stops it.
// Use WaitCaughtUp before serving lookups that must be complete.
func NewView(ctx context.Context, opts []kgo.Opt, vopts ...ViewOption) (*View, error) {
	v := NewMemView(vopts...)
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(v.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20),
		// Should a transactional producer ever write the registry, its
		// commit markers are the last offsets of a partition: without
		// them the View could never reach the high-water mark.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, err
	}
	v.cl, v.adm = cl, kadm.NewClient(cl)
	ends, err := v.adm.ListEndOffsets(ctx, v.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("registry view: list end offsets of %s: %w", v.topic, err)
	}
	starts, err := v.adm.ListStartOffsets(ctx, v.topic)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("registry view: list start offsets of %s: %w", v.topic, err)
	}
	v.target = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(v.topic, o.Partition); ok && s.Offset >= o.Offset {
			return // empty (or everything compacted away)
		}
		v.target[o.Partition] = o.Offset
	})
	tctx, cancel := context.WithCancel(context.Background())
	v.cancel, v.done = cancel, make(chan struct{})
	v.checkCaughtUpLocked()
	go v.tail(tctx)
	return v, nil
}

// Close stops tailing.
func (v *View) Close() {
	if v.cl == nil {
		return
	}
	v.cancel()
	<-v.done
	v.cl.Close()
}

// CaughtUp is closed once the View has read the topic up to the high-water
// marks it saw at start.
func (v *View) CaughtUp() <-chan struct{} { return v.caught }

// WaitCaughtUp waits until CaughtUp or ctx ends.
func (v *View) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-v.caught:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("registry view: not caught up with %s: %w", v.topic, ctx.Err())
	}
}

// Applied is the number of records applied so far; Malformed the number
// skipped because they could not be decoded.
func (v *View) Applied() int64   { return v.applied.Load() }
func (v *View) Malformed() int64 { return v.bad.Load() }

func (v *View) tail(ctx context.Context) {
	defer close(v.done)
	for ctx.Err() == nil {
		f := v.cl.PollRecords(ctx, 10000)
		f.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				v.log.Warn("registry view: fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if f.Empty() {
			continue
		}
		v.mu.Lock()
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 > v.next[r.Partition] {
				v.next[r.Partition] = r.Offset + 1
			}
			if r.Attrs.IsControl() {
				return
			}
			if err := v.applyRecordLocked(r); err != nil {
				v.bad.Add(1)
				v.log.Warn("registry view: skipping a malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
			}
		})
		v.checkCaughtUpLocked()
		v.mu.Unlock()
	}
}

func (v *View) checkCaughtUpLocked() {
	select {
	case <-v.caught:
		return
	default:
	}
	for p, off := range v.target {
		if v.next[p] < off {
			return
		}
	}
	close(v.caught)
}

// Apply applies changes directly (a Writer applies what it wrote, so a
// read-your-writes caller need not wait for the tail; NewMemView users).
func (v *View) Apply(cs ...Change) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range cs {
		v.applyLocked(c)
	}
}

// applyRecordLocked applies one record, decoding citizens without
// allocating (they are 5M of the records of a full load).
func (v *View) applyRecordLocked(r *kgo.Record) error {
	v.applied.Add(1)
	if len(r.Key) > 4 && string(r.Key[:4]) == "cit/" && r.Value != nil {
		cpr, flags, mailbox, err := peekCitizen(r.Value)
		if err != nil {
			return err
		}
		if n, ok := CPRNumber(string(r.Key[4:])); !ok || n != cpr {
			return fmt.Errorf("%w: citizen key %q does not match its value", ErrMalformed, r.Key)
		}
		v.putCitizenLocked(cpr, Registration(flags&3), flags&4 != 0, mailbox)
		return nil
	}
	c, err := DecodeRecord(r)
	if err != nil {
		return err
	}
	v.applyLocked(c)
	return nil
}

// peekCitizen reads a citizen value in place.
func peekCitizen(b []byte) (cpr uint64, flags byte, mailbox []byte, err error) {
	d := wire.Decoder{B: b, Malformed: ErrMalformed}
	if d.Byte() != formatV1 || Kind(d.Byte()) != KindCitizen {
		return 0, 0, nil, fmt.Errorf("%w: not a format-1 citizen", ErrMalformed)
	}
	d.Varint()
	d.Bytes(1 << 16) // actor
	cpr = d.Uvarint(1e10)
	flags = d.Byte()
	mailbox = d.Bytes(1 << 16)
	if d.Err == nil && len(d.B) != 0 {
		d.Fail("trailing bytes")
	}
	return cpr, flags, mailbox, d.Err
}

func (v *View) putCitizenLocked(cpr uint64, st Registration, nemsms bool, mailbox []byte) {
	var val uint32
	if len(mailbox) > 0 {
		val = v.internBytesLocked(mailbox)
	}
	if st == Exempt {
		val |= citExempt
	}
	if nemsms {
		val |= citNemSMS
	}
	v.citizens.put(cpr, val)
}

func (v *View) internBytesLocked(id []byte) uint32 {
	if i, ok := v.sysIdx[string(id)]; ok { // no allocation for the lookup
		return i
	}
	return v.internLocked(string(id))
}

func (v *View) internLocked(id string) uint32 {
	if id == "" {
		return 0
	}
	if i, ok := v.sysIdx[id]; ok {
		return i
	}
	i := uint32(len(v.names))
	if i > maxSystemIdx {
		// 4M distinct system ids: far beyond any registry; refuse rather
		// than corrupt the packed citizen values.
		v.log.Error("registry view: too many distinct system ids", "id", id)
		return 0
	}
	v.sysIdx[id] = i
	v.names = append(v.names, id)
	v.systems = append(v.systems, nil)
	return i
}

func (v *View) applyLocked(c Change) {
	kind := c.Kind()
	if c.Entity == nil {
		v.deleteLocked(kind, c.Key[len(kindPrefix[kind]):])
	} else {
		switch e := c.Entity.(type) {
		case *Citizen:
			n, _ := CPRNumber(e.CPR)
			v.putCitizenLocked(n, e.Status, e.NemSMS, []byte(e.Mailbox))
		case *Company:
			n, _ := CVRNumber(e.CVR)
			v.companies[n] = companyRec{mailbox: v.internLocked(e.Mailbox), system: v.internLocked(e.System), status: e.Status}
			if e.Forward.Set() {
				v.forwards[n] = e.Forward
			} else {
				delete(v.forwards, n)
			}
		case *Org:
			v.orgs[e.CVR] = e
		case *SenderSystem:
			v.senders[e.ID] = e
		case *System:
			i := v.internLocked(e.ID)
			old := v.systems[i]
			if old != nil {
				v.unlinkOrgLocked(old.Org, i)
			}
			v.systems[i] = e
			if e.SysKind == SystemRecipient {
				v.orgSys[e.Org] = append(v.orgSys[e.Org], i)
			}
			if isProvider(e) || isProvider(old) {
				v.providersLocked() // a scan of all systems: only when a provider changes
			}
		case *ContactGroup:
			v.groups[e.ID] = e
		case *ContactPoint:
			v.points[e.ID] = e
		case *LegacyMailbox:
			v.legacy[legacyKey{e.Org, e.Mailbox, e.Subject}] = e
		}
	}
	if v.changed != nil && kind != KindCitizen && kind != KindCompany {
		v.changed(c)
	}
}

func (v *View) deleteLocked(kind Kind, id string) {
	switch kind {
	case KindCitizen:
		if n, ok := CPRNumber(id); ok {
			v.citizens.del(n)
		}
	case KindCompany:
		if n, ok := CVRNumber(id); ok {
			delete(v.companies, n)
			delete(v.forwards, n)
		}
	case KindOrg:
		delete(v.orgs, id)
	case KindSenderSystem:
		delete(v.senders, id)
	case KindSystem:
		if i, ok := v.sysIdx[id]; ok && v.systems[i] != nil {
			old := v.systems[i]
			v.unlinkOrgLocked(old.Org, i)
			v.systems[i] = nil // the index stays: citizens may still name it
			if isProvider(old) {
				v.providersLocked()
			}
		}
	case KindContactGroup:
		delete(v.groups, id)
	case KindContactPoint:
		delete(v.points, id)
	case KindLegacyMailbox:
		// id is "<org>/<mailbox>/<subject>"
		var parts [3]string
		k := 0
		start := 0
		for i := 0; i < len(id) && k < 2; i++ {
			if id[i] == '/' {
				parts[k] = id[start:i]
				k++
				start = i + 1
			}
		}
		parts[2] = id[start:]
		delete(v.legacy, legacyKey{parts[0], parts[1], parts[2]})
	}
}

func (v *View) unlinkOrgLocked(org string, i uint32) {
	list := v.orgSys[org]
	if j := slices.Index(list, i); j >= 0 {
		list = slices.Delete(slices.Clone(list), j, j+1)
		if len(list) == 0 {
			delete(v.orgSys, org)
		} else {
			v.orgSys[org] = list
		}
	}
}

func isProvider(s *System) bool {
	return s != nil && (s.SysKind == SystemSMS || s.SysKind == SystemPrint)
}

// providersLocked picks the SMS and print providers: the active one with
// the smallest id (deterministic on every replica), else any.
func (v *View) providersLocked() {
	v.sms, v.print = nil, nil
	better := func(cur, s *System) bool {
		if cur == nil {
			return true
		}
		if cur.Deactivated != s.Deactivated {
			return cur.Deactivated
		}
		return s.ID < cur.ID
	}
	for _, s := range v.systems {
		if s == nil {
			continue
		}
		switch s.SysKind {
		case SystemSMS:
			if better(v.sms, s) {
				v.sms = s
			}
		case SystemPrint:
			if better(v.print, s) {
				v.print = s
			}
		}
	}
}

// --- lookups ---

// CitizenInfo is what routing needs of a citizen.
type CitizenInfo struct {
	Status    Registration
	NemSMS    bool
	MailboxID string  // mailbox provider system id ("" if none)
	Mailbox   *System // nil if the system is not (yet) in the registry
}

// Citizen looks a citizen up by CPR (10 digits).
func (v *View) Citizen(cpr string) (CitizenInfo, bool) {
	n, ok := CPRNumber(cpr)
	if !ok {
		return CitizenInfo{}, false
	}
	v.mu.RLock()
	val, ok := v.citizens.get(n)
	if !ok {
		v.mu.RUnlock()
		return CitizenInfo{}, false
	}
	i := val & citSysMask
	ci := CitizenInfo{Status: Registered, NemSMS: val&citNemSMS != 0, MailboxID: v.names[i], Mailbox: v.systems[i]}
	v.mu.RUnlock()
	if val&citExempt != 0 {
		ci.Status = Exempt
	}
	return ci, true
}

// CompanyInfo is what routing needs of a company.
type CompanyInfo struct {
	Status    Registration
	MailboxID string
	Mailbox   *System
	SystemID  string  // own recipient system ("" if none)
	System    *System // nil if none or not (yet) in the registry
	Forward   Forwarding
}

// Company looks a company up by CVR.
func (v *View) Company(cvr string) (CompanyInfo, bool) {
	n, ok := CVRNumber(cvr)
	if !ok {
		return CompanyInfo{}, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	c, ok := v.companies[n]
	if !ok {
		return CompanyInfo{}, false
	}
	return CompanyInfo{Status: c.status, MailboxID: v.names[c.mailbox], Mailbox: v.systems[c.mailbox],
		SystemID: v.names[c.system], System: v.systems[c.system], Forward: v.forwards[n]}, true
}

// Org looks an organisation up by CVR (nil if none).
func (v *View) Org(cvr string) *Org {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.orgs[cvr]
}

// System looks a system up by id (nil if none).
func (v *View) System(id string) *System {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if i, ok := v.sysIdx[id]; ok {
		return v.systems[i]
	}
	return nil
}

// SenderSystem looks a sender system up by id (nil if none).
func (v *View) SenderSystem(id string) *SenderSystem {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.senders[id]
}

// ContactPoint looks a contact point up by id (nil if none).
func (v *View) ContactPoint(id string) *ContactPoint {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.points[id]
}

// ContactGroup looks a contact group up by id (nil if none).
func (v *View) ContactGroup(id string) *ContactGroup {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.groups[id]
}

// LegacyMailbox looks up the mapping of an authority's DP/DP2 postkasse and
// emne: the exact pair first, then the postkasse alone (empty emne).
func (v *View) LegacyMailbox(org, mailbox, subject string) *LegacyMailbox {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if l := v.legacy[legacyKey{org, mailbox, subject}]; l != nil || subject == "" {
		return l
	}
	return v.legacy[legacyKey{org, mailbox, ""}]
}

// DefaultSystem is the organisation's default recipient system (nil if it
// has none). With several (a transient state an admin fixes), the smallest
// id wins on every replica.
func (v *View) DefaultSystem(org string) *System { return v.byRole(org, RoleDefault) }

// CVRPostSystem is the authority's system for CVR-addressed post (nil if
// none).
func (v *View) CVRPostSystem(org string) *System { return v.byRole(org, RoleCVRPost) }

func (v *View) byRole(org string, role Role) *System {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var best *System
	for _, i := range v.orgSys[org] {
		if s := v.systems[i]; s != nil && s.Role == role && (best == nil || s.ID < best.ID) {
			best = s
		}
	}
	return best
}

// OrgSystems returns the organisation's recipient systems.
func (v *View) OrgSystems(org string) []*System {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*System, 0, len(v.orgSys[org]))
	for _, i := range v.orgSys[org] {
		if s := v.systems[i]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// SMSProvider is the NemSMS provider system (nil if none).
func (v *View) SMSProvider() *System {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.sms
}

// PrintProvider is the physical-print provider system (nil if none).
func (v *View) PrintProvider() *System {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.print
}

// Stats counts what the View holds.
type Stats struct {
	Citizens, Companies, Orgs, SenderSystems, Systems, ContactGroups, ContactPoints, LegacyMailboxes int
	// CitizenTableBytes is the citizen index's memory.
	CitizenTableBytes int
}

// Stats returns the counts.
func (v *View) Stats() Stats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, s := range v.systems {
		if s != nil {
			n++
		}
	}
	return Stats{Citizens: v.citizens.len(), Companies: len(v.companies), Orgs: len(v.orgs), SenderSystems: len(v.senders),
		Systems: n, ContactGroups: len(v.groups), ContactPoints: len(v.points), LegacyMailboxes: len(v.legacy),
		CitizenTableBytes: v.citizens.bytes()}
}

// WaitFor blocks until the View has read past the given offsets (a
// Writer's produced records), or ctx ends.
func (v *View) WaitFor(ctx context.Context, offsets map[int32]int64) error {
	for {
		v.mu.RLock()
		ok := true
		for p, off := range offsets {
			if v.next[p] <= off {
				ok = false
				break
			}
		}
		v.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Effective returns the system as delivery sees it: s itself, or for an
// authority's selection of a standard system (Template set) a copy of the
// template carrying s's identity (ID, Org, Name, Role, Contact), its
// deactivation, and its Credentials when it has a secret:/file: reference
// of its own (a sha256: API key is for the supplier to present). Nil when the
// template is missing (the Writer refuses that, but a replay of an old
// log can still show it). Kind is SystemRecipient in both cases.
func (v *View) Effective(s *System) *System {
	if s == nil || s.Template == "" {
		return s
	}
	t := v.System(s.Template)
	if t == nil || t.SysKind != SystemStandard {
		return nil
	}
	return s.WithTemplate(t)
}

// WithTemplate is Effective's merge: t's transport settings, s's identity.
func (s *System) WithTemplate(t *System) *System {
	e := *t
	e.ID, e.Org, e.Name, e.SysKind, e.Role, e.Contact = s.ID, s.Org, s.Name, SystemRecipient, s.Role, s.Contact
	e.Deactivated = s.Deactivated || t.Deactivated
	// A sha256: credential is the selection's API key, which the supplier
	// presents to memoflow (pull), never something memoflow sends: the
	// template's secret stays what a push carries. A secret:/file:
	// reference of the selection's own overrides it.
	if s.Credentials != "" && !strings.HasPrefix(s.Credentials, "sha256:") {
		e.Credentials = s.Credentials
	}
	e.Template = t.ID
	return &e
}

// Selections returns the ids of the systems that selected standard system
// id (sorted): its supplier sees traffic for these, and no other.
func (v *View) Selections(id string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for _, s := range v.systems {
		if s != nil && s.Template == id {
			out = append(out, s.ID)
		}
	}
	sort.Strings(out)
	return out
}
