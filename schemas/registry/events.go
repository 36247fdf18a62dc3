package registry

import (
	"github.com/memoflow/memoflow/schemas/events"
)

// ChangeEvent returns the event-log entry of a registry change (every
// admin action is itself logged, with its actor):
//
//   - contact groups, contact points and legacy mailbox mappings:
//     CONTACT_POINT_CHANGED with ContactPoint (and RecipientSystem);
//   - organisations, sender systems and systems: SYSTEM_CHANGED with
//     RecipientSystem (the system id; for an organisation, empty);
//   - citizens and companies: DIGITAL_POST_REGISTERED or
//     DIGITAL_POST_EXEMPTED with the recipient (a CPR only through pseudo;
//     a nil pseudo leaves a citizen's recipient empty).
//
// SenderOrg is the organisation the entity belongs to. A delete has the
// same tag as a put; ErrorCode is "DELETED" so the log tells them apart.
func ChangeEvent(c *Change, pseudo *events.Pseudonymizer) events.Event {
	ev := events.Event{Time: c.Time, Actor: c.Actor}
	if c.Entity == nil {
		ev.ErrorCode = "DELETED"
		id := c.Key[len(kindPrefix[KindOfKey(c.Key)]):]
		switch KindOfKey(c.Key) {
		case KindContactGroup, KindContactPoint:
			ev.Tag, ev.ContactPoint = events.ContactPointChanged, id
		case KindLegacyMailbox:
			ev.Tag = events.ContactPointChanged
		case KindOrg:
			ev.Tag, ev.SenderOrg = events.SystemChanged, id
		case KindSenderSystem:
			ev.Tag, ev.SenderSystem = events.SystemChanged, id
		case KindSystem:
			ev.Tag, ev.RecipientSystem = events.SystemChanged, id
		case KindCitizen:
			ev.Tag = events.DigitalPostExempted
			if pseudo != nil {
				ev.Recipient = pseudo.Recipient(events.CPR, id)
			}
		case KindCompany:
			ev.Tag = events.DigitalPostExempted
			if pseudo != nil {
				ev.Recipient = pseudo.Recipient(events.CVR, id)
			}
		}
		return ev
	}
	switch e := c.Entity.(type) {
	case *ContactGroup:
		ev.Tag, ev.SenderOrg, ev.ContactPoint = events.ContactPointChanged, e.Org, e.ID
	case *ContactPoint:
		ev.Tag, ev.SenderOrg, ev.ContactPoint, ev.RecipientSystem = events.ContactPointChanged, e.Org, e.ID, e.System
	case *LegacyMailbox:
		ev.Tag, ev.SenderOrg, ev.ContactPoint = events.ContactPointChanged, e.Org, e.ContactPoint
	case *Org:
		ev.Tag, ev.SenderOrg = events.SystemChanged, e.CVR
	case *SenderSystem:
		ev.Tag, ev.SenderOrg, ev.SenderSystem = events.SystemChanged, e.Org, e.ID
	case *System:
		ev.Tag, ev.SenderOrg, ev.RecipientSystem = events.SystemChanged, e.Org, e.ID
	case *Citizen:
		ev.Tag = registrationTag(e.Status)
		ev.RecipientSystem = e.Mailbox
		if pseudo != nil {
			ev.Recipient = pseudo.Recipient(events.CPR, e.CPR)
		}
	case *Company:
		ev.Tag = registrationTag(e.Status)
		ev.RecipientSystem = e.Mailbox
		if e.System != "" {
			ev.RecipientSystem = e.System
		}
		if pseudo != nil {
			ev.Recipient = pseudo.Recipient(events.CVR, e.CVR)
		}
	}
	return ev
}

func registrationTag(r Registration) events.Tag {
	if r == Exempt {
		return events.DigitalPostExempted
	}
	return events.DigitalPostRegistered
}
