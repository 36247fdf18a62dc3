package memo

import (
	"strconv"
	"strings"
)

// Code is a stable, machine-readable failure code. Codes never change meaning;
// new ones are added to the catalogue below.
type Code string

// Level says which layer of checking a code belongs to. A differential test
// against xmllint compares only the XSD-level verdict (levels xml, limit and
// xsd); business codes are memoflow/NgDP rules on top of the schema.
type Level string

const (
	LevelXML      Level = "xml"      // not well-formed XML, or XML features memoflow refuses (DTDs)
	LevelLimit    Level = "limit"    // a resource limit of the parser was exceeded
	LevelXSD      Level = "xsd"      // violates the MeMo XSD of the declared version
	LevelBusiness Level = "business" // schema-valid, but breaks an NgDP/memoflow business rule
)

// CodeInfo is one row of the error catalogue.
type CodeInfo struct {
	Code        Code
	Level       Level
	HTTPStatus  int    // the status an HTTP front end answers with for this code alone
	Meaning     string // short HTTP-ish meaning / receipt status
	Description string // English, for operators and sender-system developers
}

// Error is one failure: a code, the element path where it was found (for
// example /Message/MessageHeader/Recipient/recipientID, repeated elements
// get a 1-based index: /Message/MessageHeader/ReplyData[2]/messageUUID) and a
// human-readable message. Match it with errors.As.
type Error struct {
	Code    Code
	Path    string
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Path != "" {
		b.WriteString(" at ")
		b.WriteString(e.Path)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Level returns the catalogue level of the error's code.
func (e *Error) Level() Level { return LookupCode(e.Code).Level }

// ValidationErrors is every failure found in one message, in document order
// within each checking pass, at most ValidateOptions.MaxErrors of them.
type ValidationErrors []*Error

func (v ValidationErrors) Error() string {
	switch len(v) {
	case 0:
		return "no errors"
	case 1:
		return v[0].Error()
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(v)))
	b.WriteString(" errors: ")
	for i, e := range v {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 5 {
			b.WriteString("...")
			break
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As/errors.Is look at each *Error.
func (v ValidationErrors) Unwrap() []error {
	out := make([]error, len(v))
	for i, e := range v {
		out[i] = e
	}
	return out
}

// SchemaValid reports whether no error is of level xml, limit or xsd: the
// verdict an XSD validator (xmllint --schema) would give.
func (v ValidationErrors) SchemaValid() bool {
	for _, e := range v {
		if LookupCode(e.Code).Level != LevelBusiness {
			return false
		}
	}
	return true
}

// Has reports whether some error carries code c.
func (v ValidationErrors) Has(c Code) bool {
	for _, e := range v {
		if e.Code == c {
			return true
		}
	}
	return false
}

// Codes returns the codes in order, for logs and tests.
func (v ValidationErrors) Codes() []Code {
	out := make([]Code, len(v))
	for i, e := range v {
		out[i] = e.Code
	}
	return out
}

// The codes. Each one is in Catalogue; TestCatalogueComplete fails when a
// code is used without a catalogue row or a row is never used.
const (
	// xml: well-formedness and refused XML features
	CodeXMLEmpty              Code = "XML_EMPTY"
	CodeXMLEncoding           Code = "XML_ENCODING"
	CodeXMLInvalidUTF8        Code = "XML_INVALID_UTF8"
	CodeXMLInvalidChar        Code = "XML_INVALID_CHAR"
	CodeXMLDeclaration        Code = "XML_DECLARATION"
	CodeXMLDoctype            Code = "XML_DOCTYPE"
	CodeXMLEntityDeclaration  Code = "XML_ENTITY_DECLARATION"
	CodeXMLUndefinedEntity    Code = "XML_UNDEFINED_ENTITY"
	CodeXMLBadReference       Code = "XML_BAD_REFERENCE"
	CodeXMLSyntax             Code = "XML_SYNTAX"
	CodeXMLBadName            Code = "XML_BAD_NAME"
	CodeXMLTagMismatch        Code = "XML_TAG_MISMATCH"
	CodeXMLTruncated          Code = "XML_TRUNCATED"
	CodeXMLDuplicateAttribute Code = "XML_DUPLICATE_ATTRIBUTE"
	CodeXMLOutsideRoot        Code = "XML_CONTENT_OUTSIDE_ROOT"
	CodeXMLUnboundPrefix      Code = "XML_UNBOUND_PREFIX"
	CodeXMLNamespaceDecl      Code = "XML_NAMESPACE_DECLARATION"

	// limit: parser resource limits
	CodeLimitSize       Code = "LIMIT_SIZE"
	CodeLimitDepth      Code = "LIMIT_DEPTH"
	CodeLimitElements   Code = "LIMIT_ELEMENTS"
	CodeLimitAttributes Code = "LIMIT_ATTRIBUTES"
	CodeLimitTextLength Code = "LIMIT_TEXT_LENGTH"
	CodeLimitErrorCount Code = "LIMIT_ERROR_COUNT"

	// xsd: the MeMo schema of the declared version
	CodeVersionUnsupported   Code = "MEMO_VERSION_UNSUPPORTED"
	CodeVersionUnknown       Code = "MEMO_VERSION_UNKNOWN"
	CodeXSDRootElement       Code = "XSD_ROOT_ELEMENT"
	CodeXSDWrongNamespace    Code = "XSD_WRONG_NAMESPACE"
	CodeXSDUnexpectedElement Code = "XSD_UNEXPECTED_ELEMENT"
	CodeXSDElementOrder      Code = "XSD_ELEMENT_ORDER"
	CodeXSDTooMany           Code = "XSD_TOO_MANY"
	CodeXSDMissingElement    Code = "XSD_MISSING_ELEMENT"
	CodeXSDTextNotAllowed    Code = "XSD_TEXT_NOT_ALLOWED"
	CodeXSDElementInSimple   Code = "XSD_ELEMENT_IN_SIMPLE_CONTENT"
	CodeXSDAttrNotAllowed    Code = "XSD_ATTRIBUTE_NOT_ALLOWED"
	CodeXSDAttrMissing       Code = "XSD_ATTRIBUTE_MISSING"
	CodeXSDMaxLength         Code = "XSD_MAX_LENGTH"
	CodeXSDPattern           Code = "XSD_PATTERN"
	CodeXSDEnumeration       Code = "XSD_ENUMERATION"
	CodeXSDBoolean           Code = "XSD_INVALID_BOOLEAN"
	CodeXSDDate              Code = "XSD_INVALID_DATE"
	CodeXSDDateTime          Code = "XSD_INVALID_DATETIME"
	CodeXSDDecimal           Code = "XSD_INVALID_DECIMAL"
	CodeXSDLong              Code = "XSD_INVALID_LONG"
	CodeXSDMaxInclusive      Code = "XSD_MAX_INCLUSIVE"
	CodeXSDLanguage          Code = "XSD_INVALID_LANGUAGE"
	CodeXSDAnyURI            Code = "XSD_INVALID_URI"
	CodeXSDBase64            Code = "XSD_INVALID_BASE64"

	// business: NgDP / memoflow rules beyond the XSD
	CodeBizMessageUUIDNotV4      Code = "BUSINESS_MESSAGE_UUID_NOT_V4"
	CodeBizUUIDMismatch          Code = "BUSINESS_MESSAGE_UUID_MISMATCH"
	CodeBizIDType                Code = "BUSINESS_ID_TYPE"
	CodeBizCPR                   Code = "BUSINESS_CPR_FORMAT"
	CodeBizCVR                   Code = "BUSINESS_CVR_FORMAT"
	CodeBizNemSMSBody            Code = "BUSINESS_NEMSMS_BODY"
	CodeBizNemSMSNotification    Code = "BUSINESS_NEMSMS_NOTIFICATION_MISSING"
	CodeBizNemSMSLength          Code = "BUSINESS_NEMSMS_NOTIFICATION_LENGTH"
	CodeBizNemSMSRecipient       Code = "BUSINESS_NEMSMS_RECIPIENT"
	CodeBizDigitalPostBody       Code = "BUSINESS_DIGITALPOST_BODY_MISSING"
	CodeBizValueDatePast         Code = "BUSINESS_VALUE_DATE_PAST"
	CodeBizValueDateTooFar       Code = "BUSINESS_VALUE_DATE_TOO_FAR"
	CodeBizPostType              Code = "BUSINESS_POST_TYPE"
	CodeBizPostTypeRecipient     Code = "BUSINESS_POST_TYPE_RECIPIENT"
	CodeBizAuthorityContactPoint Code = "BUSINESS_AUTHORITY_POST_CONTACT_POINT"
	CodeBizActionCode            Code = "BUSINESS_ACTION_CODE"
	CodeBizEncodingFormat        Code = "BUSINESS_ENCODING_FORMAT"
	CodeBizLanguage              Code = "BUSINESS_LANGUAGE"
	CodeBizBase64Strict          Code = "BUSINESS_BASE64_STRAY_CHARACTERS"
)

// Catalogue is every code memoflow's MeMo package can report. docs/memo-errors.md
// is generated from it (go test ./schemas/memo -run TestErrorDocs -update).
var Catalogue = []CodeInfo{
	{CodeXMLEmpty, LevelXML, 400, "Bad Request / INVALID", "The input is empty or holds no root element."},
	{CodeXMLEncoding, LevelXML, 415, "Unsupported Media Type / INVALID", "The document is not UTF-8: a UTF-16/32 byte-order mark or an encoding declaration other than UTF-8."},
	{CodeXMLInvalidUTF8, LevelXML, 400, "Bad Request / INVALID", "A byte sequence is not valid UTF-8 (overlong forms, surrogates and truncated sequences included)."},
	{CodeXMLInvalidChar, LevelXML, 400, "Bad Request / INVALID", "A character is not allowed in XML 1.0 (control characters other than tab, LF, CR; U+FFFE, U+FFFF)."},
	{CodeXMLDeclaration, LevelXML, 400, "Bad Request / INVALID", "The XML declaration is malformed, not version 1.0, or not at the very start of the document."},
	{CodeXMLDoctype, LevelXML, 400, "Bad Request / INVALID", "The document has a DOCTYPE. DTDs are refused (XXE and entity-expansion protection); MeMo never needs one."},
	{CodeXMLEntityDeclaration, LevelXML, 400, "Bad Request / INVALID", "The document declares entities in a DOCTYPE (billion laughs, external entities). Refused without expanding anything."},
	{CodeXMLUndefinedEntity, LevelXML, 400, "Bad Request / INVALID", "An entity reference other than the five predefined ones (amp, lt, gt, apos, quot)."},
	{CodeXMLBadReference, LevelXML, 400, "Bad Request / INVALID", "A malformed character or entity reference, or a character reference to a character XML does not allow."},
	{CodeXMLSyntax, LevelXML, 400, "Bad Request / INVALID", "Malformed markup: a broken tag, attribute, comment, CDATA section or processing instruction, or ']]>' in text."},
	{CodeXMLBadName, LevelXML, 400, "Bad Request / INVALID", "An element, attribute or processing-instruction name is not a valid XML name or namespace QName."},
	{CodeXMLTagMismatch, LevelXML, 400, "Bad Request / INVALID", "An end tag does not match the open start tag."},
	{CodeXMLTruncated, LevelXML, 400, "Bad Request / INVALID", "The document ends before the root element is closed (truncated upload)."},
	{CodeXMLDuplicateAttribute, LevelXML, 400, "Bad Request / INVALID", "An attribute appears twice on one element (by name, or by namespace and local name)."},
	{CodeXMLOutsideRoot, LevelXML, 400, "Bad Request / INVALID", "Text or a second element outside the root element."},
	{CodeXMLUnboundPrefix, LevelXML, 400, "Bad Request / INVALID", "A namespace prefix is used without being declared."},
	{CodeXMLNamespaceDecl, LevelXML, 400, "Bad Request / INVALID", "An illegal namespace declaration: an empty prefixed namespace, or the reserved xml/xmlns prefixes or names misused."},

	{CodeLimitSize, LevelLimit, 413, "Payload Too Large / INVALID", "The message exceeds the size limit (99.5 MB = 99,500,000 bytes per shipment by default)."},
	{CodeLimitDepth, LevelLimit, 400, "Bad Request / INVALID", "Elements are nested deeper than the parser allows (MeMo needs 8 levels; the default limit is 32)."},
	{CodeLimitElements, LevelLimit, 400, "Bad Request / INVALID", "The document has more elements than the parser allows."},
	{CodeLimitAttributes, LevelLimit, 400, "Bad Request / INVALID", "An element has more attributes (namespace declarations included) than the parser allows."},
	{CodeLimitTextLength, LevelLimit, 400, "Bad Request / INVALID", "A text value or attribute value other than a File's base64 content is longer than the parser allows."},
	{CodeLimitErrorCount, LevelLimit, 400, "Bad Request / INVALID", "More failures were found than are reported; the list was cut at the limit."},

	{CodeVersionUnsupported, LevelXSD, 400, "Bad Request / INVALID", "memoVersion 1.0 (pre-production) is not accepted; send MeMo 1.1 or 1.2."},
	{CodeVersionUnknown, LevelXSD, 400, "Bad Request / INVALID", "memoVersion is not a version memoflow has a schema for (1.1, 1.2)."},
	{CodeXSDRootElement, LevelXSD, 400, "Bad Request / INVALID", "The root element is not Message."},
	{CodeXSDWrongNamespace, LevelXSD, 400, "Bad Request / INVALID", "An element has the right local name but the wrong namespace (MeMo is https://DigitalPost.dk/MeMo-1; grd/kle/form/dmv/gln/udd/sor elements have their own)."},
	{CodeXSDUnexpectedElement, LevelXSD, 400, "Bad Request / INVALID", "An element the schema does not allow at this place (unknown, or not in this MeMo version)."},
	{CodeXSDElementOrder, LevelXSD, 400, "Bad Request / INVALID", "An element allowed in this parent appears out of the order the schema's sequence requires."},
	{CodeXSDTooMany, LevelXSD, 400, "Bad Request / INVALID", "An element occurs more often than its maxOccurs (a duplicated once-only element included)."},
	{CodeXSDMissingElement, LevelXSD, 400, "Bad Request / INVALID", "A required element is missing."},
	{CodeXSDTextNotAllowed, LevelXSD, 400, "Bad Request / INVALID", "Text other than whitespace (or any CDATA section) inside an element that may hold only elements."},
	{CodeXSDElementInSimple, LevelXSD, 400, "Bad Request / INVALID", "A child element inside an element of simple type."},
	{CodeXSDAttrNotAllowed, LevelXSD, 400, "Bad Request / INVALID", "An attribute the schema does not declare (memoSchVersion in 1.2 included); only namespace declarations and xsi:schemaLocation hints are free."},
	{CodeXSDAttrMissing, LevelXSD, 400, "Bad Request / INVALID", "A required attribute is missing: memoVersion, or memoSchVersion in MeMo 1.1."},
	{CodeXSDMaxLength, LevelXSD, 400, "Bad Request / INVALID", "A value is longer than its type's maxLength (in characters: text 256, comment 512, notification 150 in 1.1 / 160 in 1.2, licence number 7, URI 256, language 2)."},
	{CodeXSDPattern, LevelXSD, 400, "Bad Request / INVALID", "A value does not match its type's pattern: memoUuidType (a version-4 UUID shape) or memoDateTimeType (UTC, ending in Z)."},
	{CodeXSDEnumeration, LevelXSD, 400, "Bad Request / INVALID", "messageType is not DIGITALPOST or NEMSMS."},
	{CodeXSDBoolean, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:boolean (true, false, 1, 0)."},
	{CodeXSDDate, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:date (YYYY-MM-DD with an optional time zone, a real calendar day)."},
	{CodeXSDDateTime, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:dateTime (YYYY-MM-DDThh:mm:ss[.fff] with a time zone)."},
	{CodeXSDDecimal, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:decimal (memoVersion)."},
	{CodeXSDLong, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:long (productionUnitNumber, globalLocationNumber)."},
	{CodeXSDMaxInclusive, LevelXSD, 400, "Bad Request / INVALID", "A number is above its type's maxInclusive (P-number 9999999999, GLN 9999999999999)."},
	{CodeXSDLanguage, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:language value."},
	{CodeXSDAnyURI, LevelXSD, 400, "Bad Request / INVALID", "Not an xs:anyURI (a URI reference per RFC 3986 after escaping disallowed characters)."},
	{CodeXSDBase64, LevelXSD, 400, "Bad Request / INVALID", "A File's content is not xs:base64Binary (wrong length, padding or non-zero pad bits)."},

	{CodeBizMessageUUIDNotV4, LevelBusiness, 422, "Unprocessable / INVALID", "messageUUID, the idempotency key, is not an RFC 4122 version-4 UUID."},
	{CodeBizUUIDMismatch, LevelBusiness, 422, "Unprocessable / INVALID", "messageUUID differs from the memo-message-uuid the sender gave with the request."},
	{CodeBizIDType, LevelBusiness, 422, "Unprocessable / INVALID", "idType of Sender, Recipient or Representative is not CPR or CVR."},
	{CodeBizCPR, LevelBusiness, 422, "Unprocessable / INVALID", "A CPR number is not exactly 10 digits (leading zeros are kept)."},
	{CodeBizCVR, LevelBusiness, 422, "Unprocessable / INVALID", "A CVR number is not exactly 8 digits (leading zeros are kept)."},
	{CodeBizNemSMSBody, LevelBusiness, 422, "Unprocessable / INVALID", "A NEMSMS message carries a MessageBody; NemSMS is the notification text only."},
	{CodeBizNemSMSNotification, LevelBusiness, 422, "Unprocessable / INVALID", "A NEMSMS message has no notification (the SMS text)."},
	{CodeBizNemSMSLength, LevelBusiness, 422, "Unprocessable / INVALID", "A NEMSMS notification is longer than 150 characters (the 1.2 schema allows 160)."},
	{CodeBizNemSMSRecipient, LevelBusiness, 422, "Unprocessable / INVALID", "A NEMSMS message is not addressed to a citizen (idType CPR)."},
	{CodeBizDigitalPostBody, LevelBusiness, 422, "Unprocessable / INVALID", "A DIGITALPOST message has no MessageBody, so no document to deliver."},
	{CodeBizValueDatePast, LevelBusiness, 422, "Unprocessable / INVALID", "doNotDeliverUntilDate is before today's date in Europe/Copenhagen."},
	{CodeBizValueDateTooFar, LevelBusiness, 422, "Unprocessable / INVALID", "doNotDeliverUntilDate is more than 5 days after today's date in Europe/Copenhagen."},
	{CodeBizPostType, LevelBusiness, 422, "Unprocessable / INVALID", "postType is not MYNDIGHEDSPOST or VIRKSOMHEDSPOST."},
	{CodeBizPostTypeRecipient, LevelBusiness, 422, "Unprocessable / INVALID", "postType is set but the recipient is not a CVR: postType separates authority and company post for a CVR."},
	{CodeBizAuthorityContactPoint, LevelBusiness, 422, "Unprocessable / INVALID", "MYNDIGHEDSPOST (authority post) must name the recipient's contact point."},
	{CodeBizActionCode, LevelBusiness, 422, "Unprocessable / INVALID", "actionCode is not one of AFTALE, BETALING, SELVBETJENING, INFORMATION, UNDERSKRIV, BEKRAEFT, FORBEREDELSE, TILMELDING."},
	{CodeBizEncodingFormat, LevelBusiness, 422, "Unprocessable / INVALID", "encodingFormat is not a MIME type (type/subtype)."},
	{CodeBizLanguage, LevelBusiness, 422, "Unprocessable / INVALID", "language is not a two-letter lower-case ISO 639-1 code."},
	{CodeBizBase64Strict, LevelBusiness, 422, "Unprocessable / INVALID", "A File's content holds characters outside the base64 alphabet and whitespace. libxml2 ignores them, XSD 1.0 and decoders do not."},
}

var catalogueIndex = func() map[Code]int {
	m := make(map[Code]int, len(Catalogue))
	for i, c := range Catalogue {
		m[c.Code] = i
	}
	return m
}()

// LookupCode returns the catalogue row of c; an unknown code gets a zero
// row with level xsd, so it never counts as business-only.
func LookupCode(c Code) CodeInfo {
	if i, ok := catalogueIndex[c]; ok {
		return Catalogue[i]
	}
	return CodeInfo{Code: c, Level: LevelXSD, HTTPStatus: 400}
}
