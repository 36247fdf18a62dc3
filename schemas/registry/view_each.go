package registry

// Listing for the admin API (stages/admin). Added by the admin helper as a
// purely additive file: it reads the View's maps under its read lock and
// changes nothing else.

// Get returns the entity under a compact key (citizens and companies are
// rebuilt from their packed form).
func (v *View) Get(key string) (Entity, bool) {
	e := v.entity(key)
	return e, e != nil
}

// Each calls fn for every entity of kind that belongs to organisation org
// (every one when org is ""), until fn returns false. Organisations,
// sender systems, systems, contact groups, contact points and legacy
// mailboxes are listed; citizens and companies are not (millions: look
// them up by number). fn runs after the read lock is released, so it may
// call the View; it sees a snapshot taken when Each was called.
func (v *View) Each(kind Kind, org string, fn func(Entity) bool) {
	var es []Entity
	mine := func(o string) bool { return org == "" || o == org }
	v.mu.RLock()
	switch kind {
	case KindContactGroup:
		es = make([]Entity, 0, len(v.groups))
	case KindContactPoint:
		es = make([]Entity, 0, len(v.points))
	}
	switch kind {
	case KindOrg:
		for _, o := range v.orgs {
			if mine(o.CVR) {
				es = append(es, o)
			}
		}
	case KindSenderSystem:
		for _, s := range v.senders {
			if mine(s.Org) {
				es = append(es, s)
			}
		}
	case KindSystem:
		for _, s := range v.systems {
			if s != nil && mine(s.Org) {
				es = append(es, s)
			}
		}
	case KindContactGroup:
		for _, g := range v.groups {
			if mine(g.Org) {
				es = append(es, g)
			}
		}
	case KindContactPoint:
		for _, p := range v.points {
			if mine(p.Org) {
				es = append(es, p)
			}
		}
	case KindLegacyMailbox:
		for _, l := range v.legacy {
			if mine(l.Org) {
				es = append(es, l)
			}
		}
	}
	v.mu.RUnlock()
	for _, e := range es {
		if !fn(e) {
			return
		}
	}
}
