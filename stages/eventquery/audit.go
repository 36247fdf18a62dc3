package eventquery

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// Producer is the part of a Kafka client the audit needs; *kgo.Client has
// it. The client must be idempotent with acks=all (franz-go's default).
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// maxSearchText bounds the logged description of a search.
const maxSearchText = 2000

// search is what the audit event says about one request.
type search struct {
	tag    events.Tag       // EVENT_LOG_SEARCHES or STATISTICS_READ
	path   string           // the endpoint, e.g. /apis/v1/events
	params url.Values       // canonical parameters, no CPR in clear
	about  events.Recipient // the person (pseudonym) or organisation searched for
}

// audit logs the search as an event on memo.events and waits for Kafka's
// acknowledgement. It runs before the query: a search that cannot be
// logged is not run (the log administrator role's searches are themselves
// subject to audit).
//
// The event has no field for free text, so the search's description (path
// and canonical parameters, any CPR replaced by its pseudonym) is carried
// in TransmissionID, which otherwise names a submission; Actor is the
// principal, SenderOrg its organisation, and Recipient the person
// (pseudonymised) or organisation searched for, so a person's searches can
// themselves be found by CPR.
func (a *API) audit(ctx context.Context, p *auth.Principal, s search) error {
	desc := s.path
	if len(s.params) > 0 {
		clean := url.Values{}
		for k, vs := range s.params {
			for _, v := range vs {
				// senderOrRecipient is a CVR or the pseudonym text made
				// here (parseParty accepts nothing else); a UUID is not a
				// CPR. Everything else may be anything a user typed.
				if k != "senderOrRecipient" && !reUUID.MatchString(v) {
					v = a.scrubCPR(v)
				}
				clean.Add(k, v)
			}
		}
		// Percent-encoding keeps the text unambiguous; ':' and ',' are left
		// readable (pseudonym:<key>:<hex>, lists).
		desc += "?" + strings.NewReplacer("%3A", ":", "%2C", ",").Replace(clean.Encode())
	}
	if len(desc) > maxSearchText {
		desc = desc[:maxSearchText]
	}
	ev := events.Event{
		Time:           a.now().UTC(),
		Tag:            s.tag,
		TransmissionID: desc,
		SenderOrg:      p.Org,
		Recipient:      s.about,
		Actor:          p.ID,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.auditTimeout)
	defer cancel()
	if err := a.producer.ProduceSync(ctx, events.NewRecord(pipeline.TopicEvents, ev)).FirstErr(); err != nil {
		a.metrics.auditFailures.Inc()
		a.log.Warn("search not logged, so not run", "actor", p.ID, "org", p.Org, "tag", string(s.tag), "err", err)
		return errorf(CodeAuditUnavailable, "the search could not be logged (%v); it was not run; retry", err)
	}
	return nil
}

// pseudonymText is how a person appears in a logged search: the pseudonym
// under the current key, with the key's id.
func pseudonymText(r events.Recipient) string {
	return fmt.Sprintf("pseudonym:%s:%s", r.KeyID(), r.ID())
}

// reUUID matches a UUID in its usual text form.
var reUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// scrubCPR replaces anything shaped like a CPR number by its pseudonym: a
// run of exactly ten digits, or six digits, a dash or space and four (not
// part of longer runs of digits; letters around do not matter, "cpr" glued
// to the number must not save it). Parameters are validated before they
// get here and senderOrRecipient is already a pseudonym; this is the
// second guard for free text (a system id or a messageUUID someone typed a
// CPR into), because the event log is kept for years and a CPR must never
// reach it in clear.
func (a *API) scrubCPR(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		end := -1
		switch {
		case j-i == 10:
			end = j
		case j-i == 6 && j+5 <= len(s) && (s[j] == '-' || s[j] == ' ') && allDigits(s[j+1:j+5]) && (j+5 == len(s) || !isDigit(s[j+5])):
			end = j + 5
		}
		if end < 0 {
			b.WriteString(s[i:j])
			i = j
			continue
		}
		b.WriteString(pseudonymText(a.pseudo.Recipient(events.CPR, s[i:end])))
		i = end
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// canonical renders the parsed events query as it is logged: normalised
// values, the dates as the exact bounds searched, a CPR as its pseudonym.
func (eq *eventsQuery) canonical(cprText string) url.Values {
	v := url.Values{}
	v.Set("dateFrom", eq.from.Format(time.RFC3339))
	v.Set("dateTo", eq.to.Format(time.RFC3339))
	if eq.system != "" {
		v.Set("senderOrRecipientSystem", eq.system)
	}
	switch eq.party.kind {
	case partyOrg:
		v.Set("senderOrRecipient", eq.party.value)
	case partyCPR:
		v.Set("senderOrRecipient", cprText)
	}
	if len(eq.tags) > 0 {
		v.Set("eventTag", strings.Join(eq.tags, ","))
	}
	if eq.messageUUID != "" {
		v.Set("messageUUID", eq.messageUUID)
	}
	v.Set("direction", eq.direction)
	v.Set("page", fmt.Sprint(eq.page))
	v.Set("size", fmt.Sprint(eq.size))
	var sorts []string
	for _, k := range eq.sort {
		d := "asc"
		if k.desc {
			d = "desc"
		}
		sorts = append(sorts, k.field+":"+d)
	}
	v.Set("sortFields", strings.Join(sorts, ","))
	v.Set("format", eq.format)
	return v
}

func (sq *statsQuery) canonical() url.Values {
	v := url.Values{}
	v.Set("dateFrom", sq.from.Format(time.DateOnly))
	v.Set("dateTo", sq.to.Format(time.DateOnly))
	if len(sq.dims) > 0 {
		v.Set("dimensions", strings.Join(sq.dims, ","))
	}
	for _, f := range sq.filters {
		v.Set(f.param, strings.Join(f.values, ","))
	}
	v.Set("format", sq.format)
	return v
}
