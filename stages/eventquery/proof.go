package eventquery

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strconv"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/events"
)

// maxTrail bounds the events of one message in a proof. A message has a
// handful; a redelivery loop a few dozen.
const maxTrail = 10_000

// Delivery states of a proof.
const (
	StatusDelivered  = "DELIVERED"   // available to the recipient (or its system)
	StatusRecalled   = "RECALLED"    // withdrawn before delivery
	StatusFailed     = "FAILED"      // refused or undeliverable
	StatusInProgress = "IN_PROGRESS" // none of the above yet
)

// A letter counts as delivered when it is available to the recipient
// (memo-ngdp-facts.md 3.6): in the mailbox, ready for or taken by the
// recipient system, or sent by the fallback channel.
var deliveredTags = map[string]bool{
	string(events.MemoAvailableToRecipient):         true,
	string(events.MemoSendReadyForFetch):            true,
	string(events.MemoSendSentToRecipientSystem):    true,
	string(events.MemoSendFetchedByRecipientSystem): true,
	string(events.NemSMSSentSuccessfully):           true,
	string(events.PhysicalLetterSent):               true,
}

var recalledTags = map[string]bool{
	string(events.MemoSendRecalled):               true,
	string(events.MemoMessageRecalled):            true,
	string(events.DelayedMemoMessageRecalled):     true,
	string(events.MessageRecalledByAdministrator): true,
}

// Final failures only: a failed push to a recipient system is retried.
var failedTags = map[string]bool{
	string(events.MemoSendValidationFailed): true,
	string(events.MemoSendFailed):           true,
	string(events.MemoArchiveRejected):      true,
	string(events.MemoTransformationFailed): true,
	string(events.NemSMSSendFailed):         true,
}

var receivedTags = map[string]bool{
	string(events.MemoSendReceived):     true,
	string(events.MemoMassSendReceived): true,
}

// Proof is one message's trail as the caller may see it, with a summary.
type Proof struct {
	MessageUUID        string  `json:"messageUUID"`
	Status             string  `json:"status"`
	ReceivedAt         string  `json:"receivedAt,omitempty"`  // first MEMO_(MASS_)SEND_RECEIVED
	AvailableAt        string  `json:"availableAt,omitempty"` // first delivery event
	SenderOrganisation string  `json:"senderOrganisation,omitempty"`
	SenderSystem       string  `json:"senderSystem,omitempty"`
	RecipientIDType    string  `json:"recipientIdType,omitempty"`
	RecipientID        string  `json:"recipientId,omitempty"`
	ContactPoint       string  `json:"contactPoint,omitempty"`
	RecipientSystem    string  `json:"recipientSystem,omitempty"`
	MessageType        string  `json:"messageType,omitempty"`
	PostType           string  `json:"postType,omitempty"`
	Size               uint64  `json:"size"`
	Attachments        uint16  `json:"attachments"`
	Events             []Entry `json:"events"`
	// Digest is the hex SHA-256 of Events as JSON: a printed proof can be
	// checked against the log later by fetching the JSON proof again.
	Digest      string `json:"digest"`
	GeneratedAt string `json:"generatedAt"`
	GeneratedBy string `json:"generatedBy"` // principal id and organisation
}

func (a *API) proof(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	uuid := r.PathValue("messageUUID")
	if !checkText(uuid) {
		return badParam("messageUUID", "not a valid messageUUID")
	}
	q := r.URL.Query()
	if err := onlyKnown(q, []string{"format"}); err != nil {
		return err
	}
	format, err := outputFormat(q, r.Header.Get("Accept"), formatJSON, formatHTML)
	if err != nil {
		return err
	}
	sc := a.scopeOf(p)
	params := url.Values{"messageUUID": {uuid}, "format": {format}}
	if err := a.audit(r.Context(), p, search{tag: events.EventLogSearches, path: "/apis/v1/events/proof", params: params}); err != nil {
		return err
	}
	loc, err := a.store.locate(r.Context(), uuid)
	if err != nil {
		return err
	}
	if loc == nil {
		return errorf(CodeNotFound, "no events of messageUUID %s", uuid)
	}
	f := &eventFilter{messageUUID: uuid, loc: loc}
	sc.restrict(f, directionAll)
	rows, _, err := a.store.events(r.Context(), f, []sortKey{{field: "eventTime"}}, 0, maxTrail, false)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		// The same answer as for a message that does not exist: another
		// organisation's messages are not even confirmed to exist.
		return errorf(CodeNotFound, "no events of messageUUID %s", uuid)
	}
	pr := a.buildProof(uuid, rows, sc, p)
	if format == formatHTML {
		var buf bytes.Buffer
		if err := proofPage.Execute(&buf, pr); err != nil {
			return errorf(CodeInternal, "rendering the proof: %v", err)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		// The page has no script and loads nothing; say so to the browser.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(buf.Bytes())
		return nil
	}
	writeJSON(w, http.StatusOK, pr)
	return nil
}

func (a *API) buildProof(uuid string, rows []eventRow, sc scope, p *auth.Principal) *Proof {
	pr := &Proof{MessageUUID: uuid, Events: make([]Entry, len(rows)),
		GeneratedAt: a.now().UTC().Format(timeLayout), GeneratedBy: p.ID + " (" + p.Org + ")"}
	delivered, recalled, failed := false, false, false
	first := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	for i := range rows {
		e := rows[i].entry(sc)
		pr.Events[i] = e
		switch {
		case receivedTags[e.EventTag]:
			first(&pr.ReceivedAt, e.EventTime)
		case deliveredTags[e.EventTag]:
			first(&pr.AvailableAt, e.EventTime)
			delivered = true
		case recalledTags[e.EventTag]:
			recalled = true
		case failedTags[e.EventTag]:
			failed = true
		}
		first(&pr.SenderOrganisation, e.SenderOrganisation)
		first(&pr.SenderSystem, e.SenderSystem)
		first(&pr.RecipientIDType, e.RecipientIDType)
		first(&pr.RecipientID, e.RecipientID)
		first(&pr.ContactPoint, e.ContactPoint)
		first(&pr.RecipientSystem, e.RecipientSystem)
		first(&pr.MessageType, e.MessageType)
		first(&pr.PostType, e.PostType)
		if pr.Size == 0 {
			pr.Size, pr.Attachments = e.Size, e.Attachments
		}
	}
	switch {
	case delivered:
		pr.Status = StatusDelivered
	case recalled:
		pr.Status = StatusRecalled
	case failed:
		pr.Status = StatusFailed
	default:
		pr.Status = StatusInProgress
	}
	b, _ := json.Marshal(pr.Events)
	sum := sha256.Sum256(b)
	pr.Digest = hex.EncodeToString(sum[:])
	return pr
}

//go:embed proof.html
var proofHTML string

// proofPage is self-contained (inline style, no script, no link, no
// image) so it prints and archives as it is. html/template escapes every
// value: contact points and system ids come from senders.
var proofPage = template.Must(template.New("proof").Parse(proofHTML))
