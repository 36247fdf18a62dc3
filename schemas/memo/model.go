// Package memo parses, validates, serializes and generates MeMo messages
// (MeddelelsesModel, the XML format of Danish Digital Post), versions 1.1 and
// 1.2. See DESIGN.md for what is checked where.
package memo

import "time"

// Namespaces of the MeMo schemas. Elements from the imported type schemas keep
// their own namespace (grd:CPRdata, kle:KLEdata, ...).
const (
	NamespaceMeMo = "https://DigitalPost.dk/MeMo-1"
	NamespaceGrd  = "https://data.gov.dk/model/core/"
	NamespaceKle  = "http://kle-online.dk/"
	NamespaceForm = "http://www.form-online.dk/"
	NamespaceDmv  = "https://motorregister.skat.dk/"
	NamespaceGln  = "https://www.gs1.dk/gs1-standarder/identifikation/gln-global-location-number/"
	NamespaceUdd  = "https://www.dst.dk/da/TilSalg/Forskningsservice/Dokumentation/hoejkvalitetsvariable/elevregister-2/udd#"
	NamespaceSor  = "https://services.nsi.dk/en/Services/SOR"
	NamespaceXSI  = "http://www.w3.org/2001/XMLSchema-instance"
	NamespaceXML  = "http://www.w3.org/XML/1998/namespace"
)

// Version is a MeMo version memoflow has a schema for.
type Version uint8

const (
	VersionUnknown Version = iota
	Version11
	Version12
)

func (v Version) String() string {
	switch v {
	case Version11:
		return "1.1"
	case Version12:
		return "1.2"
	}
	return "unknown"
}

// MemoSchVersion11 is the memoSchVersion value MeMo 1.1 messages carry.
const MemoSchVersion11 = "1.1.0"

// Opt is an optional element of simple type. Set is false when the element
// is absent; Value is its text after the whitespace handling of its XSD type
// (a defaulted boolean written as an empty element holds the default).
type Opt struct {
	Value string
	Set   bool
}

// Some returns a present Opt.
func Some(v string) Opt { return Opt{Value: v, Set: true} }

// Bool is the xs:boolean value, false when absent (the schema's default).
func (o Opt) Bool() bool { return o.Set && (o.Value == "true" || o.Value == "1") }

// Date is a calendar date (xs:date without its optional time zone).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// Date parses Value as xs:date; ok is false when absent or not a date.
func (o Opt) Date() (d Date, ok bool) {
	if !o.Set {
		return Date{}, false
	}
	return parseXSDate(o.Value)
}

// Message is one MeMo message. Required elements of simple type are plain
// strings (always written); optional ones are Opt; optional complex children
// are pointers (nil = absent); repeated ones are slices.
type Message struct {
	// MemoVersion is the memoVersion attribute (an xs:decimal) as written.
	MemoVersion Opt
	// Version is what MemoVersion names; VersionUnknown for 1.0, other values
	// or a missing attribute (Validate reports which).
	Version Version
	// MemoSchVersion is required in 1.1 ("1.1.0") and forbidden in 1.2.
	MemoSchVersion Opt

	Header MessageHeader
	Body   *MessageBody // nil: no MessageBody (NemSMS)

	// Size is the length in bytes of the parsed input; File content offsets
	// refer to that input.
	Size int

	src        []byte           // the parsed input, for copying attachments
	docErrs    ValidationErrors // document-level XSD findings of the parser (order, unknown elements, ...)
	rules      Version          // the schema rules the parser applied
	rootBroken bool             // the root was not memo:Message: nothing below was typed
}

// Rules returns the version whose schema applies: Version, or when that is
// unknown, 1.1 if memoSchVersion is present and 1.2 otherwise.
func (m *Message) Rules() Version {
	if m.Version != VersionUnknown {
		return m.Version
	}
	if m.rules != VersionUnknown {
		return m.rules
	}
	if m.MemoSchVersion.Set {
		return Version11
	}
	return Version12
}

// Source returns the input the message was parsed from (nil for a message
// built in code). File content offsets index into it.
func (m *Message) Source() []byte { return m.src }

type MessageHeader struct {
	MessageType            string // DIGITALPOST or NEMSMS
	MessageUUID            string
	MessageID              Opt
	MessageCode            Opt
	Label                  string
	Notification           Opt // the SMS text for NEMSMS
	AdditionalNotification Opt
	Reply                  Opt // xs:boolean
	ReplyByDateTime        Opt
	DoNotDeliverUntilDate  Opt // value date (valørdato), xs:date
	Mandatory              Opt // xs:boolean; required in 1.1, optional in 1.2
	LegalNotification      Opt // xs:boolean; required in 1.1, optional in 1.2
	PostType               Opt // MYNDIGHEDSPOST or VIRKSOMHEDSPOST
	Sender                 Sender
	Recipient              Recipient
	ContentData            *ContentData
	ForwardData            *ForwardData
	ReplyData              []ReplyData
}

type Sender struct {
	SenderID       string
	IDType         string // CPR or CVR
	IDTypeLabel    Opt
	Label          string
	AttentionData  *AttentionData
	ContactPoint   *ContactPoint
	Representative *Representative // MeMo 1.2 only
}

type Recipient struct {
	RecipientID   string
	IDType        string // CPR or CVR
	IDTypeLabel   Opt
	Label         Opt
	AttentionData *AttentionData
	ContactPoint  *ContactPoint
}

// Representative sends on behalf of the authority (MeMo 1.2).
type Representative struct {
	RepresentativeID Opt
	IDType           Opt
	IDTypeLabel      Opt
	Label            Opt
}

type ContactPoint struct {
	ContactGroup   Opt
	ContactPointID string
	Label          Opt
	ContactInfo    []ContactInfo // at most 2
}

type ContactInfo struct {
	Label string
	Value string
}

type AttentionData struct {
	AttentionPerson      *AttentionPerson
	ProductionUnit       *ProductionUnit // grd
	GlobalLocationNumber *GlobalLocationNumber
	EMail                *EMail
	SEnumber             *SEnumber // grd
	Telephone            *Telephone
	EID                  *EID // grd
	ContentResponsible   *ContentResponsible
	GeneratingSystem     *GeneratingSystem
	SORdata              *SORdata
	Address              *Address             // grd
	UnstructuredAddress  *UnstructuredAddress // grd
}

type AttentionPerson struct {
	PersonID Opt
	Label    Opt
}

type ProductionUnit struct {
	ProductionUnitNumber string // xs:long ≤ 9999999999
	ProductionUnitName   Opt
}

type GlobalLocationNumber struct {
	GlobalLocationNumber string // xs:long ≤ 9999999999999
	Location             Opt
}

type EMail struct {
	EmailAddress string
	RelatedAgent Opt
}

type SEnumber struct {
	SENumber    string
	CompanyName Opt
}

type Telephone struct {
	TelephoneNumber string
	RelatedAgent    Opt
}

type EID struct {
	EID   string
	Label Opt
}

type ContentResponsible struct {
	ContentResponsibleID Opt
	Label                Opt
}

type GeneratingSystem struct {
	GeneratingSystemID string
	Label              Opt
}

type SORdata struct {
	SORIdentifier string
	EntryName     Opt
}

type Address struct {
	ID           Opt
	AddressLabel Opt
	HouseNumber  Opt
	Door         Opt
	Floor        Opt
	CO           Opt
	ZipCode      Opt
	City         Opt
	Country      Opt
	AddressPoint *AddressPoint
}

type AddressPoint struct {
	GeographicEastingMeasure  Opt
	GeographicNorthingMeasure Opt
	GeographicHeightMeasure   Opt
}

type UnstructuredAddress struct {
	Unstructured string
}

// ContentData is metadata about the letter (what it concerns).
type ContentData struct {
	CPRdata               *CPRdata
	CVRdata               *CVRdata
	MotorVehicle          *MotorVehicle
	PropertyNumber        *PropertyNumber
	CaseID                *CaseID
	KLEdata               *KLEdata
	FORMdata              *FORMdata
	ProductionUnit        *ProductionUnit
	Education             *Education
	Address               *Address
	UnstructuredAddress   *UnstructuredAddress
	AdditionalContentData []AdditionalContentData // at most 10
}

type CPRdata struct {
	CPRNumber string
	Name      Opt
}

type CVRdata struct {
	CVRNumber   string
	CompanyName Opt
}

type MotorVehicle struct {
	LicenseNumber string // at most 7 characters
	ChassisNumber Opt
}

type PropertyNumber struct {
	PropertyNumber string
}

type CaseID struct {
	CaseID     string
	CaseSystem string
}

type KLEdata struct {
	SubjectKey    string
	Version       string
	ActivityFacet Opt
	Label         string
}

type FORMdata struct {
	TaskKey       string
	Version       string
	ActivityFacet Opt
	Label         string
}

type Education struct {
	EducationCode string
	EducationName Opt
}

type AdditionalContentData struct {
	ContentDataType  Opt
	ContentDataName  string
	ContentDataValue string
}

// ForwardData marks a forwarded message and names the original.
type ForwardData struct {
	MessageUUID                string
	OriginalMessageDateTime    string
	OriginalSender             string
	OriginalContentResponsible Opt
	OriginalRepresentative     Opt // MeMo 1.2 only
	ContactPointID             Opt
	Comment                    Opt
}

// ReplyData is one step of the thread a message answers.
type ReplyData struct {
	MessageID           Opt
	MessageUUID         string
	ReplyUUID           Opt
	SenderID            Opt
	RecipientID         Opt
	CaseID              Opt
	ContactPointID      Opt
	GeneratingSystemID  Opt
	Comment             Opt
	AdditionalReplyData []AdditionalReplyData // at most 4
}

type AdditionalReplyData struct {
	Label string
	Value string
}

type MessageBody struct {
	CreatedDateTime     string
	MainDocument        Document
	AdditionalDocuments []Document
	TechnicalDocuments  []Document // Actions are not allowed here
}

// Document is a MainDocument, AdditionalDocument or TechnicalDocument; ID is
// mainDocumentID, additionalDocumentID or technicalDocumentID.
type Document struct {
	ID      Opt
	Label   Opt
	Files   []File // at least 1
	Actions []Action
}

type File struct {
	EncodingFormat string // a MIME type
	Filename       string
	Language       string // xs:language, at most 2 characters
	Content        Content
}

// Content is a File's base64 content. The parser never decodes it: it
// records where its character data is in the input and what a validity scan
// found.
type Content struct {
	// Offset and Length locate the element's character data in the parsed
	// input (between <content> and </content>; it may include whitespace,
	// and rarely CDATA markup or character references).
	Offset, Length int
	// DecodedSize is the number of bytes the base64 decodes to.
	DecodedSize int64
	// Inline is base64 text for a message built in code; when non-nil it is
	// used instead of Offset/Length.
	Inline []byte

	scan    b64State
	scanned bool
}

// Raw returns the content's character data as written in src (the parsed
// input), or Inline when set.
func (c *Content) Raw(src []byte) []byte {
	if c.Inline != nil {
		return c.Inline
	}
	if c.Offset < 0 || c.Offset+c.Length > len(src) {
		return nil
	}
	return src[c.Offset : c.Offset+c.Length]
}

// Action links the document to self-service, payment, a calendar entry, ...
type Action struct {
	Label         string
	ActionCode    string
	StartDateTime Opt
	EndDateTime   Opt
	Reservation   *Reservation // at most one of Reservation and EntryPoint
	EntryPoint    *EntryPoint
}

type Reservation struct {
	Description     string
	ReservationUUID string
	Abstract        string
	Location        string
	StartDateTime   string
	EndDateTime     string
	OrganizerMail   Opt
	OrganizerName   Opt
}

type EntryPoint struct {
	URL string
}

// Files calls fn for every File of the body, in document order.
func (m *Message) Files(fn func(doc string, f *File)) {
	if m.Body == nil {
		return
	}
	for i := range m.Body.MainDocument.Files {
		fn("MainDocument", &m.Body.MainDocument.Files[i])
	}
	for d := range m.Body.AdditionalDocuments {
		for i := range m.Body.AdditionalDocuments[d].Files {
			fn("AdditionalDocument", &m.Body.AdditionalDocuments[d].Files[i])
		}
	}
	for d := range m.Body.TechnicalDocuments {
		for i := range m.Body.TechnicalDocuments[d].Files {
			fn("TechnicalDocument", &m.Body.TechnicalDocuments[d].Files[i])
		}
	}
}
