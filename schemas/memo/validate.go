package memo

import (
	"errors"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Copenhagen must resolve on hosts without zoneinfo
	"unicode/utf8"
)

// ValidateOptions configures Validate. The zero value is usable.
type ValidateOptions struct {
	// Now is the clock for the value-date rules (nil: time.Now). Dates are
	// compared as calendar dates in Europe/Copenhagen.
	Now func() time.Time
	// MaxValueDateDays is how far ahead doNotDeliverUntilDate may be (0: 5).
	MaxValueDateDays int
	// ExpectedUUID is the memo-message-uuid the sender passed with the
	// request; when set, messageUUID must equal it (case-insensitively).
	ExpectedUUID string
	// MaxErrors caps the list (0: 100). A cut list ends with LIMIT_ERROR_COUNT.
	MaxErrors int
	// SkipBusiness runs the XSD-level checks only.
	SkipBusiness bool
}

// DefaultMaxErrors is how many failures Validate reports by default.
const DefaultMaxErrors = 100

// DefaultMaxValueDateDays is NgDP's horizon for doNotDeliverUntilDate.
const DefaultMaxValueDateDays = 5

var (
	cphOnce sync.Once
	cph     *time.Location
)

// Copenhagen is the Europe/Copenhagen location (UTC+1 fixed if the zone
// database were unusable, which the embedded tzdata prevents).
func Copenhagen() *time.Location {
	cphOnce.Do(func() {
		loc, err := time.LoadLocation("Europe/Copenhagen")
		if err != nil {
			loc = time.FixedZone("CET", 3600)
		}
		cph = loc
	})
	return cph
}

// Check parses and validates data: the one call an ingest stage needs. The
// list holds a fatal parse error (xml or limit level) or every failure, up
// to opts.MaxErrors. The message is nil only if data could not be read at all.
func Check(data []byte, opts ValidateOptions) (*Message, ValidationErrors) {
	m, err := Parse(data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeXMLSyntax, Message: err.Error()}
		}
		errs := make(ValidationErrors, 0, len(m.docErrs)+1)
		errs = append(errs, m.docErrs...)
		errs = append(errs, e)
		return m, capErrors(errs, opts.MaxErrors)
	}
	return m, Validate(m, opts)
}

func capErrors(errs ValidationErrors, max int) ValidationErrors {
	if max <= 0 {
		max = DefaultMaxErrors
	}
	if len(errs) <= max {
		return errs
	}
	errs = errs[:max:max]
	return append(errs, &Error{Code: CodeLimitErrorCount, Message: "more than " + itoa(max) + " failures; the rest are not listed"})
}

var validatorPool = sync.Pool{New: func() any { return &validator{path: make([]byte, 0, 256)} }}

type validator struct {
	opts      ValidateOptions
	max       int
	errs      ValidationErrors
	ver       Version
	path      []byte
	checkText bool                // strings did not come from the parser: check they are XML text
	docSeen   map[string]struct{} // code|path of document-level findings
	slab      []Error
	missing   []string // paths of elements the document lacks
}

// Validate checks a message against the XSD of its version (the findings
// the parser recorded about element order and unknown elements included)
// and the business rules. It returns nil when the message is valid.
func Validate(m *Message, opts ValidateOptions) ValidationErrors {
	v := validatorPool.Get().(*validator)
	defer func() {
		path := v.path[:0]
		*v = validator{path: path}
		validatorPool.Put(v)
	}()
	v.opts, v.max, v.checkText = opts, opts.MaxErrors, m.src == nil
	if v.max <= 0 {
		v.max = DefaultMaxErrors
	}
	if len(m.docErrs) > 0 {
		v.docSeen = make(map[string]struct{}, 2*len(m.docErrs))
		for _, e := range m.docErrs {
			v.errs = append(v.errs, e)
			v.docSeen[string(e.Code)+"|"+e.Path] = struct{}{}
			if e.Code == CodeXSDMissingElement {
				v.missing = append(v.missing, e.Path)
			}
		}
	}
	if m.rootBroken {
		return capErrors(v.errs, v.max)
	}
	v.ver = m.Rules()
	v.version(m)
	v.path = append(v.path[:0], "/Message"...)
	v.walk(ctMessage, m)
	if !opts.SkipBusiness {
		v.business(m)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return capErrors(v.errs, v.max)
}

func (v *validator) add(code Code, path string, msg string) {
	if len(v.errs) > v.max {
		return
	}
	if v.docSeen != nil {
		if _, dup := v.docSeen[string(code)+"|"+path]; dup {
			return
		}
		// Whatever the model says about an element the document lacks (an
		// empty value, a wrong idType) is noise next to "missing".
		for _, mp := range v.missing {
			if strings.HasPrefix(path, mp) && (len(path) == len(mp) || path[len(mp)] == '/' || path[len(mp)] == '[') {
				return
			}
		}
	}
	if v.errs == nil {
		v.errs = make(ValidationErrors, 0, 8)
	}
	// Errors come from a small slab: one allocation for the first eight.
	// The slab goes to the caller with the errors and is never reused.
	if len(v.slab) == 0 {
		v.slab = make([]Error, 8)
	}
	e := &v.slab[0]
	v.slab = v.slab[1:]
	*e = Error{Code: code, Path: path, Message: msg}
	v.errs = append(v.errs, e)
}

func (v *validator) at(name string) string {
	return string(v.path) + "/" + name
}

// version checks the root attributes.
func (v *validator) version(m *Message) {
	if !m.MemoVersion.Set {
		v.add(CodeXSDAttrMissing, "/Message/@memoVersion", "attribute memoVersion is required")
	} else {
		ver, valid, unsupported := versionOf(m.MemoVersion.Value)
		switch {
		case !valid:
			v.add(CodeXSDDecimal, "/Message/@memoVersion", "memoVersion "+quote(m.MemoVersion.Value)+" is not an xs:decimal")
		case unsupported:
			v.add(CodeVersionUnsupported, "/Message/@memoVersion", "MeMo 1.0 is not accepted; use 1.1 or 1.2")
		case ver == VersionUnknown:
			v.add(CodeVersionUnknown, "/Message/@memoVersion", "memoVersion "+quote(m.MemoVersion.Value)+" is not 1.1 or 1.2")
		}
	}
	switch v.ver {
	case Version11:
		if !m.MemoSchVersion.Set {
			v.add(CodeXSDAttrMissing, "/Message/@memoSchVersion", "attribute memoSchVersion is required in MeMo 1.1")
		} else if code, msg := checkSimple(stText, m.MemoSchVersion.Value, v.ver); code != "" {
			v.add(code, "/Message/@memoSchVersion", msg)
		}
	case Version12:
		if m.MemoSchVersion.Set {
			v.add(CodeXSDAttrNotAllowed, "/Message/@memoSchVersion", "attribute memoSchVersion is not allowed in MeMo 1.2")
		}
	}
}

// walk checks obj against content model ct, under v.path.
func (v *validator) walk(ct *ctype, obj any) {
	base := len(v.path)
	var groupSeen uint8
	for i := range ct.parts {
		p := &ct.parts[i]
		if p.isLeaf() {
			if p.content != nil {
				v.content(p.content(obj), p)
				continue
			}
			var val string
			present := true
			if p.str != nil {
				val = *p.str(obj)
			} else {
				o := p.opt(obj)
				val, present = o.Value, o.Set
			}
			if !present {
				if p.minFor(v.ver) > 0 {
					v.add(CodeXSDMissingElement, v.at(p.name), "required element "+p.name+" is missing in "+ct.name)
				}
				continue
			}
			if !p.allowed(v.ver) {
				v.add(CodeXSDUnexpectedElement, v.at(p.name), p.name+" is not allowed in MeMo "+v.ver.String())
				continue
			}
			if v.checkText && !v.xmlText(val, p.name) {
				continue
			}
			if code, msg := checkSimple(p.st, val, v.ver); code != "" {
				v.add(code, v.at(p.name), msg)
			}
			continue
		}
		n := p.count(obj)
		if n > 0 && !p.allowed(v.ver) {
			v.add(CodeXSDUnexpectedElement, v.at(p.name), p.name+" is not allowed in MeMo "+v.ver.String())
			continue
		}
		if n < p.minFor(v.ver) {
			v.add(CodeXSDMissingElement, v.at(p.name), "required element "+p.name+" is missing in "+ct.name)
		}
		if p.max != 0 && n > p.max {
			v.add(CodeXSDTooMany, v.at(p.name)+"["+itoa(p.max+1)+"]", p.name+" may occur at most "+itoa(p.max)+" time(s)")
		}
		if p.group != 0 && n > 0 {
			if groupSeen == p.group {
				v.add(CodeXSDUnexpectedElement, v.at(p.name), p.name+" is not allowed together with its alternative")
			}
			groupSeen = p.group
		}
		for k := 0; k < n; k++ {
			v.path = append(v.path, '/')
			v.path = append(v.path, p.name...)
			if p.repeated() {
				v.path = append(v.path, '[')
				v.path = appendInt(v.path, k+1)
				v.path = append(v.path, ']')
			}
			v.walk(p.ct, p.child(obj, k))
			v.path = v.path[:base]
		}
	}
}

// xmlText checks a string set in code is UTF-8 made of XML characters.
func (v *validator) xmlText(s, name string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				v.add(CodeXMLInvalidUTF8, v.at(name), "value is not valid UTF-8")
				return false
			}
		}
		if !isXMLChar(r) {
			v.add(CodeXMLInvalidChar, v.at(name), "value holds a character XML does not allow")
			return false
		}
	}
	return true
}

func (v *validator) content(c *Content, p *particle) {
	st := c.scan
	if !c.scanned {
		st = b64State{}
		st.feed(c.Inline)
	}
	if !st.valid() {
		v.add(CodeXSDBase64, v.at(p.name), "content is not valid base64 ("+itoa(int(st.n))+" base64 characters, "+itoa(int(st.pad))+" padding)")
	}
	if st.stray && !v.opts.SkipBusiness {
		v.add(CodeBizBase64Strict, v.at(p.name), "content holds characters outside the base64 alphabet")
	}
}

// Business rules.

var actionCodes = map[string]bool{
	"AFTALE": true, "BETALING": true, "SELVBETJENING": true, "INFORMATION": true,
	"UNDERSKRIV": true, "BEKRAEFT": true, "FORBEREDELSE": true, "TILMELDING": true,
}

func allDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// IsUUID reports whether s has the hyphenated UUID form, 8-4-4-4-12 hex
// digits of either case, whatever its version: the shape every API path
// parameter and file name made from a messageUUID is checked against (so
// nothing else, no slash or dot, passes).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// IsUUIDv4 reports whether s is an RFC 4122 version-4 UUID in its
// hyphenated form (either case).
func IsUUIDv4(s string) bool {
	if !IsUUID(s) {
		return false
	}
	variant := s[19] | 0x20
	return s[14] == '4' && (variant == '8' || variant == '9' || variant == 'a' || variant == 'b')
}

// party checks an idType and the id it types; the paths are constants so
// a valid message allocates nothing here.
func (v *validator) party(idPath, typePath, idType, id string) {
	var q [72]byte
	switch idType {
	case "CPR":
		if !allDigits(id, 10) {
			v.add(CodeBizCPR, idPath, string(appendQuote(q[:0], id))+" is not a CPR number (10 digits)")
		}
	case "CVR":
		if !allDigits(id, 8) {
			v.add(CodeBizCVR, idPath, string(appendQuote(q[:0], id))+" is not a CVR number (8 digits)")
		}
	default:
		v.add(CodeBizIDType, typePath, "idType "+string(appendQuote(q[:0], idType))+" is not CPR or CVR")
	}
}

func validMIME(s string) bool {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	slash := strings.IndexByte(s, '/')
	if slash <= 0 || slash == len(s)-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == slash {
			continue
		}
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?=", c) >= 0 {
			return false
		}
	}
	return true
}

func civilDays(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func (v *validator) business(m *Message) {
	h := &m.Header
	const hp = "/Message/MessageHeader"
	if !IsUUIDv4(h.MessageUUID) {
		v.add(CodeBizMessageUUIDNotV4, hp+"/messageUUID", "messageUUID "+quote(h.MessageUUID)+" is not a version-4 UUID")
	}
	if v.opts.ExpectedUUID != "" && !strings.EqualFold(h.MessageUUID, v.opts.ExpectedUUID) {
		v.add(CodeBizUUIDMismatch, hp+"/messageUUID", "messageUUID "+quote(h.MessageUUID)+" differs from the request's memo-message-uuid "+quote(v.opts.ExpectedUUID))
	}
	v.party(hp+"/Sender/senderID", hp+"/Sender/idType", h.Sender.IDType, h.Sender.SenderID)
	v.party(hp+"/Recipient/recipientID", hp+"/Recipient/idType", h.Recipient.IDType, h.Recipient.RecipientID)
	if r := h.Sender.Representative; r != nil && r.IDType.Set {
		v.party(hp+"/Sender/Representative/representativeID", hp+"/Sender/Representative/idType", r.IDType.Value, r.RepresentativeID.Value)
	}
	if cd := h.ContentData; cd != nil {
		if cd.CPRdata != nil && !allDigits(cd.CPRdata.CPRNumber, 10) {
			v.add(CodeBizCPR, hp+"/ContentData/CPRdata/cprNumber", "cprNumber "+quote(cd.CPRdata.CPRNumber)+" is not a CPR number (10 digits)")
		}
		if cd.CVRdata != nil && !allDigits(cd.CVRdata.CVRNumber, 8) {
			v.add(CodeBizCVR, hp+"/ContentData/CVRdata/cvrNumber", "cvrNumber "+quote(cd.CVRdata.CVRNumber)+" is not a CVR number (8 digits)")
		}
	}

	switch h.MessageType {
	case "NEMSMS":
		if m.Body != nil {
			v.add(CodeBizNemSMSBody, "/Message/MessageBody", "a NEMSMS message carries no MessageBody")
		}
		if !h.Notification.Set || trimXMLSpace(h.Notification.Value) == "" {
			v.add(CodeBizNemSMSNotification, hp+"/notification", "a NEMSMS message needs the SMS text in notification")
		} else if n := charLen(h.Notification.Value); n > 150 {
			v.add(CodeBizNemSMSLength, hp+"/notification", "the SMS text has "+itoa(n)+" characters, more than 150")
		}
		if h.Recipient.IDType != "CPR" {
			v.add(CodeBizNemSMSRecipient, hp+"/Recipient/idType", "NemSMS goes to citizens: idType must be CPR")
		}
	case "DIGITALPOST":
		if m.Body == nil {
			v.add(CodeBizDigitalPostBody, "/Message/MessageBody", "a DIGITALPOST message needs a MessageBody with its document")
		}
	}

	if h.DoNotDeliverUntilDate.Set {
		if d, ok := parseXSDate(h.DoNotDeliverUntilDate.Value); ok {
			now := time.Now
			if v.opts.Now != nil {
				now = v.opts.Now
			}
			t := now().In(Copenhagen())
			today := civilDays(t.Year(), t.Month(), t.Day())
			days := civilDays(d.Year, d.Month, d.Day) - today
			max := v.opts.MaxValueDateDays
			if max <= 0 {
				max = DefaultMaxValueDateDays
			}
			switch {
			case days < 0:
				v.add(CodeBizValueDatePast, hp+"/doNotDeliverUntilDate", "value date "+h.DoNotDeliverUntilDate.Value+" is before today ("+t.Format("2006-01-02")+", Europe/Copenhagen)")
			case days > int64(max):
				v.add(CodeBizValueDateTooFar, hp+"/doNotDeliverUntilDate", "value date "+h.DoNotDeliverUntilDate.Value+" is more than "+itoa(max)+" days after today ("+t.Format("2006-01-02")+", Europe/Copenhagen)")
			}
		}
	}

	if h.PostType.Set {
		pt := h.PostType.Value
		switch pt {
		case "MYNDIGHEDSPOST", "VIRKSOMHEDSPOST":
			if h.Recipient.IDType != "CVR" {
				v.add(CodeBizPostTypeRecipient, hp+"/postType", "postType "+pt+" needs a CVR recipient")
			} else if pt == "MYNDIGHEDSPOST" && h.Recipient.ContactPoint == nil {
				v.add(CodeBizAuthorityContactPoint, hp+"/Recipient", "MYNDIGHEDSPOST must be addressed to a contact point (Recipient/ContactPoint)")
			}
		default:
			v.add(CodeBizPostType, hp+"/postType", "postType "+quote(pt)+" is not MYNDIGHEDSPOST or VIRKSOMHEDSPOST")
		}
	}

	if m.Body != nil {
		v.documents(&m.Body.MainDocument, "/Message/MessageBody/MainDocument")
		for i := range m.Body.AdditionalDocuments {
			v.documents(&m.Body.AdditionalDocuments[i], "/Message/MessageBody/AdditionalDocument["+itoa(i+1)+"]")
		}
		for i := range m.Body.TechnicalDocuments {
			v.documents(&m.Body.TechnicalDocuments[i], "/Message/MessageBody/TechnicalDocument["+itoa(i+1)+"]")
		}
	}
}

func (v *validator) documents(d *Document, base string) {
	for i := range d.Files {
		f := &d.Files[i]
		fp := base + "/File[" + itoa(i+1) + "]"
		if !validMIME(f.EncodingFormat) {
			v.add(CodeBizEncodingFormat, fp+"/encodingFormat", "encodingFormat "+quote(f.EncodingFormat)+" is not a MIME type")
		}
		l := trimXMLSpace(f.Language)
		if len(l) != 2 || l[0] < 'a' || l[0] > 'z' || l[1] < 'a' || l[1] > 'z' {
			v.add(CodeBizLanguage, fp+"/language", "language "+quote(f.Language)+" is not a two-letter ISO 639-1 code")
		}
	}
	for i := range d.Actions {
		if !actionCodes[d.Actions[i].ActionCode] {
			v.add(CodeBizActionCode, base+"/Action["+itoa(i+1)+"]/actionCode", "actionCode "+quote(d.Actions[i].ActionCode)+" is not a known action")
		}
	}
}
