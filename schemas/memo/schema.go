package memo

// The MeMo content models (MeMo_core.xsd 1.1 and 1.2 plus the imported type
// schemas) as tables. The parser walks them to check element order and
// cardinality while it fills the model; Validate walks them over a model to
// check values and the cardinalities a model can break. One table serves
// both versions: particles carry their version differences.

// nsID is a namespace the schemas know; nsOther is any other URI.
type nsID uint8

const (
	nsNone nsID = iota // no namespace (unprefixed attributes, or no default namespace)
	nsMemo
	nsGrd
	nsKle
	nsForm
	nsDmv
	nsGln
	nsUdd
	nsSor
	nsXSI
	nsXML
	nsXMLNS
	nsOther
)

var nsURI = [...]string{
	nsNone:  "",
	nsMemo:  NamespaceMeMo,
	nsGrd:   NamespaceGrd,
	nsKle:   NamespaceKle,
	nsForm:  NamespaceForm,
	nsDmv:   NamespaceDmv,
	nsGln:   NamespaceGln,
	nsUdd:   NamespaceUdd,
	nsSor:   NamespaceSor,
	nsXSI:   NamespaceXSI,
	nsXML:   NamespaceXML,
	nsXMLNS: "http://www.w3.org/2000/xmlns/",
	nsOther: "",
}

// nsPrefix is the prefix the serializer declares for each namespace.
var nsPrefix = [...]string{
	nsMemo: "memo", nsGrd: "grd", nsKle: "kle", nsForm: "form", nsDmv: "dmv",
	nsGln: "gln", nsUdd: "udd", nsSor: "sor",
}

func lookupNS(uri []byte) nsID {
	switch string(uri) {
	case "":
		return nsNone
	case NamespaceMeMo:
		return nsMemo
	case NamespaceGrd:
		return nsGrd
	case NamespaceKle:
		return nsKle
	case NamespaceForm:
		return nsForm
	case NamespaceDmv:
		return nsDmv
	case NamespaceGln:
		return nsGln
	case NamespaceUdd:
		return nsUdd
	case NamespaceSor:
		return nsSor
	case NamespaceXSI:
		return nsXSI
	case NamespaceXML:
		return nsXML
	case "http://www.w3.org/2000/xmlns/":
		return nsXMLNS
	}
	return nsOther
}

// stype is a simple type of the schemas.
type stype uint8

const (
	stText         stype = iota // dt:memoTextType: xs:string, maxLength 256
	stComment                   // dt:memoCommentType: maxLength 512
	stNotification              // dt:memoNotificationType: maxLength 150 (1.1 set) / 160 (set the 1.2 core imports)
	stLicense                   // dt:memoLicenseNumberType: maxLength 7
	stURI                       // dt:memoUriType: xs:anyURI, maxLength 256
	stUUID                      // dt:memoUuidType: the v4 pattern
	stLanguage                  // dt:memoLanguageType: xs:language, maxLength 2
	stDateTime                  // dt:memoDateTimeType: xs:dateTime, pattern .+Z
	stDate                      // xs:date
	stBoolean                   // xs:boolean
	stGLN                       // dt:memoGLNType: xs:long, maxInclusive 9999999999999
	stPNumber                   // dt:memoPNumberType: xs:long, maxInclusive 9999999999
	stBase64                    // xs:base64Binary (File/content)
	stMessageType               // dt:memoMessageType: DIGITALPOST | NEMSMS
)

// ctype is a complex type: a sequence of particles.
type ctype struct {
	id    uint8 // index in ctypes; 0 is unused
	name  string
	parts []particle
}

// ctypes indexes every complex type, so parser frames can refer to them
// without pointers.
var ctypes = []*ctype{nil}

func init() {
	var add func(ct *ctype)
	add = func(ct *ctype) {
		if ct.id != 0 {
			return
		}
		ct.id = uint8(len(ctypes))
		ctypes = append(ctypes, ct)
		for i := range ct.parts {
			if ct.parts[i].ct != nil {
				add(ct.parts[i].ct)
			}
		}
	}
	add(ctMessage)
}

// particle is one element of a sequence. Leaves have st and one of str, opt,
// content; complex children have ct, open, count and child.
type particle struct {
	name   string
	ns     nsID
	min    int
	max    int   // 0 = unbounded
	only12 bool  // exists only in MeMo 1.2
	opt12  bool  // required in 1.1, optional in 1.2
	group  uint8 // >0: alternatives of one xs:choice (minOccurs 0, maxOccurs 1)

	st      stype
	def     string // default value of an element written without character data
	str     func(o any) *string
	opt     func(o any) *Opt
	content func(o any) *Content

	ct    *ctype
	open  func(o any) any        // create (or append) the child and return it
	count func(o any) int        // how many are present in the model
	child func(o any, i int) any // the i-th present one
}

func (p *particle) isLeaf() bool { return p.ct == nil }

func (p *particle) allowed(v Version) bool { return !p.only12 || v == Version12 }

func (p *particle) minFor(v Version) int {
	if p.opt12 && v == Version12 {
		return 0
	}
	return p.min
}

// repeated says whether paths name this particle with an index.
func (p *particle) repeated() bool { return p.max != 1 }

func req(name string, ns nsID, st stype, f func(o any) *string) particle {
	return particle{name: name, ns: ns, min: 1, max: 1, st: st, str: f}
}

func opt(name string, ns nsID, st stype, f func(o any) *Opt) particle {
	return particle{name: name, ns: ns, min: 0, max: 1, st: st, opt: f}
}

func withDefault(p particle, def string) particle { p.def = def; return p }

func requiredIn11(p particle) particle { p.min = 1; p.opt12 = true; return p }

func only12(p particle) particle { p.only12 = true; return p }

func inChoice(p particle, g uint8) particle { p.group = g; return p }

// one is a required complex child held by value.
func one[T any](name string, ns nsID, ct *ctype, f func(o any) *T) particle {
	return particle{name: name, ns: ns, min: 1, max: 1, ct: ct,
		open:  func(o any) any { return f(o) },
		count: func(o any) int { return 1 },
		child: func(o any, _ int) any { return f(o) },
	}
}

// maybe is an optional complex child held by pointer.
func maybe[T any](name string, ns nsID, ct *ctype, f func(o any) **T) particle {
	return particle{name: name, ns: ns, min: 0, max: 1, ct: ct,
		open: func(o any) any {
			p := f(o)
			if *p == nil {
				*p = new(T)
			}
			return *p
		},
		count: func(o any) int {
			if *f(o) != nil {
				return 1
			}
			return 0
		},
		child: func(o any, _ int) any { return *f(o) },
	}
}

// many is a repeated complex child held in a slice.
func many[T any](name string, ns nsID, ct *ctype, min, max int, f func(o any) *[]T) particle {
	return particle{name: name, ns: ns, min: min, max: max, ct: ct,
		open: func(o any) any {
			s := f(o)
			var zero T
			*s = append(*s, zero)
			return &(*s)[len(*s)-1]
		},
		count: func(o any) int { return len(*f(o)) },
		child: func(o any, i int) any { return &(*f(o))[i] },
	}
}

var ctMessage = &ctype{name: "Message", parts: []particle{
	one("MessageHeader", nsMemo, ctMessageHeader, func(o any) *MessageHeader { return &o.(*Message).Header }),
	maybe("MessageBody", nsMemo, ctMessageBody, func(o any) **MessageBody { return &o.(*Message).Body }),
}}

func hdr(o any) *MessageHeader { return o.(*MessageHeader) }

var ctMessageHeader = &ctype{name: "MessageHeader", parts: []particle{
	req("messageType", nsMemo, stMessageType, func(o any) *string { return &hdr(o).MessageType }),
	req("messageUUID", nsMemo, stUUID, func(o any) *string { return &hdr(o).MessageUUID }),
	opt("messageID", nsMemo, stText, func(o any) *Opt { return &hdr(o).MessageID }),
	opt("messageCode", nsMemo, stText, func(o any) *Opt { return &hdr(o).MessageCode }),
	req("label", nsMemo, stText, func(o any) *string { return &hdr(o).Label }),
	opt("notification", nsMemo, stNotification, func(o any) *Opt { return &hdr(o).Notification }),
	opt("additionalNotification", nsMemo, stText, func(o any) *Opt { return &hdr(o).AdditionalNotification }),
	withDefault(opt("reply", nsMemo, stBoolean, func(o any) *Opt { return &hdr(o).Reply }), "false"),
	opt("replyByDateTime", nsMemo, stDateTime, func(o any) *Opt { return &hdr(o).ReplyByDateTime }),
	opt("doNotDeliverUntilDate", nsMemo, stDate, func(o any) *Opt { return &hdr(o).DoNotDeliverUntilDate }),
	requiredIn11(withDefault(opt("mandatory", nsMemo, stBoolean, func(o any) *Opt { return &hdr(o).Mandatory }), "false")),
	requiredIn11(withDefault(opt("legalNotification", nsMemo, stBoolean, func(o any) *Opt { return &hdr(o).LegalNotification }), "false")),
	opt("postType", nsMemo, stText, func(o any) *Opt { return &hdr(o).PostType }),
	one("Sender", nsMemo, ctSender, func(o any) *Sender { return &hdr(o).Sender }),
	one("Recipient", nsMemo, ctRecipient, func(o any) *Recipient { return &hdr(o).Recipient }),
	maybe("ContentData", nsMemo, ctContentData, func(o any) **ContentData { return &hdr(o).ContentData }),
	maybe("ForwardData", nsMemo, ctForwardData, func(o any) **ForwardData { return &hdr(o).ForwardData }),
	many("ReplyData", nsMemo, ctReplyData, 0, 0, func(o any) *[]ReplyData { return &hdr(o).ReplyData }),
}}

func snd(o any) *Sender { return o.(*Sender) }

var ctSender = &ctype{name: "Sender", parts: []particle{
	req("senderID", nsMemo, stText, func(o any) *string { return &snd(o).SenderID }),
	req("idType", nsMemo, stText, func(o any) *string { return &snd(o).IDType }),
	opt("idTypeLabel", nsMemo, stText, func(o any) *Opt { return &snd(o).IDTypeLabel }),
	req("label", nsMemo, stText, func(o any) *string { return &snd(o).Label }),
	maybe("AttentionData", nsMemo, ctAttentionData, func(o any) **AttentionData { return &snd(o).AttentionData }),
	maybe("ContactPoint", nsMemo, ctContactPoint, func(o any) **ContactPoint { return &snd(o).ContactPoint }),
	only12(maybe("Representative", nsMemo, ctRepresentative, func(o any) **Representative { return &snd(o).Representative })),
}}

func rcp(o any) *Recipient { return o.(*Recipient) }

var ctRecipient = &ctype{name: "Recipient", parts: []particle{
	req("recipientID", nsMemo, stText, func(o any) *string { return &rcp(o).RecipientID }),
	req("idType", nsMemo, stText, func(o any) *string { return &rcp(o).IDType }),
	opt("idTypeLabel", nsMemo, stText, func(o any) *Opt { return &rcp(o).IDTypeLabel }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &rcp(o).Label }),
	maybe("AttentionData", nsMemo, ctAttentionData, func(o any) **AttentionData { return &rcp(o).AttentionData }),
	maybe("ContactPoint", nsMemo, ctContactPoint, func(o any) **ContactPoint { return &rcp(o).ContactPoint }),
}}

func rep(o any) *Representative { return o.(*Representative) }

var ctRepresentative = &ctype{name: "Representative", parts: []particle{
	opt("representativeID", nsMemo, stText, func(o any) *Opt { return &rep(o).RepresentativeID }),
	opt("idType", nsMemo, stText, func(o any) *Opt { return &rep(o).IDType }),
	opt("idTypeLabel", nsMemo, stText, func(o any) *Opt { return &rep(o).IDTypeLabel }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &rep(o).Label }),
}}

func cpt(o any) *ContactPoint { return o.(*ContactPoint) }

var ctContactPoint = &ctype{name: "ContactPoint", parts: []particle{
	opt("contactGroup", nsMemo, stText, func(o any) *Opt { return &cpt(o).ContactGroup }),
	req("contactPointID", nsMemo, stText, func(o any) *string { return &cpt(o).ContactPointID }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &cpt(o).Label }),
	many("ContactInfo", nsMemo, ctContactInfo, 0, 2, func(o any) *[]ContactInfo { return &cpt(o).ContactInfo }),
}}

var ctContactInfo = &ctype{name: "ContactInfo", parts: []particle{
	req("label", nsMemo, stText, func(o any) *string { return &o.(*ContactInfo).Label }),
	req("value", nsMemo, stText, func(o any) *string { return &o.(*ContactInfo).Value }),
}}

func att(o any) *AttentionData { return o.(*AttentionData) }

var ctAttentionData = &ctype{name: "AttentionData", parts: []particle{
	maybe("AttentionPerson", nsMemo, ctAttentionPerson, func(o any) **AttentionPerson { return &att(o).AttentionPerson }),
	maybe("ProductionUnit", nsGrd, ctProductionUnit, func(o any) **ProductionUnit { return &att(o).ProductionUnit }),
	maybe("GlobalLocationNumber", nsGln, ctGlobalLocationNumber, func(o any) **GlobalLocationNumber { return &att(o).GlobalLocationNumber }),
	maybe("EMail", nsMemo, ctEMail, func(o any) **EMail { return &att(o).EMail }),
	maybe("SEnumber", nsGrd, ctSEnumber, func(o any) **SEnumber { return &att(o).SEnumber }),
	maybe("Telephone", nsMemo, ctTelephone, func(o any) **Telephone { return &att(o).Telephone }),
	maybe("EID", nsGrd, ctEID, func(o any) **EID { return &att(o).EID }),
	maybe("ContentResponsible", nsMemo, ctContentResponsible, func(o any) **ContentResponsible { return &att(o).ContentResponsible }),
	maybe("GeneratingSystem", nsMemo, ctGeneratingSystem, func(o any) **GeneratingSystem { return &att(o).GeneratingSystem }),
	maybe("SORdata", nsSor, ctSORdata, func(o any) **SORdata { return &att(o).SORdata }),
	maybe("Address", nsGrd, ctAddress, func(o any) **Address { return &att(o).Address }),
	maybe("UnstructuredAddress", nsGrd, ctUnstructuredAddress, func(o any) **UnstructuredAddress { return &att(o).UnstructuredAddress }),
}}

var ctAttentionPerson = &ctype{name: "AttentionPerson", parts: []particle{
	opt("personID", nsMemo, stText, func(o any) *Opt { return &o.(*AttentionPerson).PersonID }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &o.(*AttentionPerson).Label }),
}}

var ctProductionUnit = &ctype{name: "ProductionUnit", parts: []particle{
	req("productionUnitNumber", nsGrd, stPNumber, func(o any) *string { return &o.(*ProductionUnit).ProductionUnitNumber }),
	opt("productionUnitName", nsGrd, stText, func(o any) *Opt { return &o.(*ProductionUnit).ProductionUnitName }),
}}

var ctGlobalLocationNumber = &ctype{name: "GlobalLocationNumber", parts: []particle{
	req("globalLocationNumber", nsGln, stGLN, func(o any) *string { return &o.(*GlobalLocationNumber).GlobalLocationNumber }),
	opt("location", nsGln, stText, func(o any) *Opt { return &o.(*GlobalLocationNumber).Location }),
}}

var ctEMail = &ctype{name: "EMail", parts: []particle{
	req("emailAddress", nsMemo, stText, func(o any) *string { return &o.(*EMail).EmailAddress }),
	opt("relatedAgent", nsMemo, stText, func(o any) *Opt { return &o.(*EMail).RelatedAgent }),
}}

var ctSEnumber = &ctype{name: "SEnumber", parts: []particle{
	req("seNumber", nsGrd, stText, func(o any) *string { return &o.(*SEnumber).SENumber }),
	opt("companyName", nsGrd, stText, func(o any) *Opt { return &o.(*SEnumber).CompanyName }),
}}

var ctTelephone = &ctype{name: "Telephone", parts: []particle{
	req("telephoneNumber", nsMemo, stText, func(o any) *string { return &o.(*Telephone).TelephoneNumber }),
	opt("relatedAgent", nsMemo, stText, func(o any) *Opt { return &o.(*Telephone).RelatedAgent }),
}}

var ctEID = &ctype{name: "EID", parts: []particle{
	req("eID", nsGrd, stText, func(o any) *string { return &o.(*EID).EID }),
	opt("label", nsGrd, stText, func(o any) *Opt { return &o.(*EID).Label }),
}}

var ctContentResponsible = &ctype{name: "ContentResponsible", parts: []particle{
	opt("contentResponsibleID", nsMemo, stText, func(o any) *Opt { return &o.(*ContentResponsible).ContentResponsibleID }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &o.(*ContentResponsible).Label }),
}}

var ctGeneratingSystem = &ctype{name: "GeneratingSystem", parts: []particle{
	req("generatingSystemID", nsMemo, stText, func(o any) *string { return &o.(*GeneratingSystem).GeneratingSystemID }),
	opt("label", nsMemo, stText, func(o any) *Opt { return &o.(*GeneratingSystem).Label }),
}}

var ctSORdata = &ctype{name: "SORdata", parts: []particle{
	req("sorIdentifier", nsSor, stText, func(o any) *string { return &o.(*SORdata).SORIdentifier }),
	opt("entryName", nsSor, stText, func(o any) *Opt { return &o.(*SORdata).EntryName }),
}}

func adr(o any) *Address { return o.(*Address) }

var ctAddress = &ctype{name: "Address", parts: []particle{
	opt("id", nsGrd, stText, func(o any) *Opt { return &adr(o).ID }),
	opt("addressLabel", nsGrd, stText, func(o any) *Opt { return &adr(o).AddressLabel }),
	opt("houseNumber", nsGrd, stText, func(o any) *Opt { return &adr(o).HouseNumber }),
	opt("door", nsGrd, stText, func(o any) *Opt { return &adr(o).Door }),
	opt("floor", nsGrd, stText, func(o any) *Opt { return &adr(o).Floor }),
	opt("co", nsGrd, stText, func(o any) *Opt { return &adr(o).CO }),
	opt("zipCode", nsGrd, stText, func(o any) *Opt { return &adr(o).ZipCode }),
	opt("city", nsGrd, stText, func(o any) *Opt { return &adr(o).City }),
	opt("country", nsGrd, stText, func(o any) *Opt { return &adr(o).Country }),
	maybe("AddressPoint", nsGrd, ctAddressPoint, func(o any) **AddressPoint { return &adr(o).AddressPoint }),
}}

var ctAddressPoint = &ctype{name: "AddressPoint", parts: []particle{
	opt("geographicEastingMeasure", nsGrd, stText, func(o any) *Opt { return &o.(*AddressPoint).GeographicEastingMeasure }),
	opt("geographicNorthingMeasure", nsGrd, stText, func(o any) *Opt { return &o.(*AddressPoint).GeographicNorthingMeasure }),
	opt("geographicHeightMeasure", nsGrd, stText, func(o any) *Opt { return &o.(*AddressPoint).GeographicHeightMeasure }),
}}

var ctUnstructuredAddress = &ctype{name: "UnstructuredAddress", parts: []particle{
	req("unstructured", nsGrd, stText, func(o any) *string { return &o.(*UnstructuredAddress).Unstructured }),
}}

func cd(o any) *ContentData { return o.(*ContentData) }

var ctContentData = &ctype{name: "ContentData", parts: []particle{
	maybe("CPRdata", nsGrd, ctCPRdata, func(o any) **CPRdata { return &cd(o).CPRdata }),
	maybe("CVRdata", nsGrd, ctCVRdata, func(o any) **CVRdata { return &cd(o).CVRdata }),
	maybe("MotorVehicle", nsDmv, ctMotorVehicle, func(o any) **MotorVehicle { return &cd(o).MotorVehicle }),
	maybe("PropertyNumber", nsGrd, ctPropertyNumber, func(o any) **PropertyNumber { return &cd(o).PropertyNumber }),
	maybe("CaseID", nsMemo, ctCaseID, func(o any) **CaseID { return &cd(o).CaseID }),
	maybe("KLEdata", nsKle, ctKLEdata, func(o any) **KLEdata { return &cd(o).KLEdata }),
	maybe("FORMdata", nsForm, ctFORMdata, func(o any) **FORMdata { return &cd(o).FORMdata }),
	maybe("ProductionUnit", nsGrd, ctProductionUnit, func(o any) **ProductionUnit { return &cd(o).ProductionUnit }),
	maybe("Education", nsUdd, ctEducation, func(o any) **Education { return &cd(o).Education }),
	maybe("Address", nsGrd, ctAddress, func(o any) **Address { return &cd(o).Address }),
	maybe("UnstructuredAddress", nsGrd, ctUnstructuredAddress, func(o any) **UnstructuredAddress { return &cd(o).UnstructuredAddress }),
	many("AdditionalContentData", nsMemo, ctAdditionalContentData, 0, 10, func(o any) *[]AdditionalContentData { return &cd(o).AdditionalContentData }),
}}

var ctCPRdata = &ctype{name: "CPRdata", parts: []particle{
	req("cprNumber", nsGrd, stText, func(o any) *string { return &o.(*CPRdata).CPRNumber }),
	opt("name", nsGrd, stText, func(o any) *Opt { return &o.(*CPRdata).Name }),
}}

var ctCVRdata = &ctype{name: "CVRdata", parts: []particle{
	req("cvrNumber", nsGrd, stText, func(o any) *string { return &o.(*CVRdata).CVRNumber }),
	opt("companyName", nsGrd, stText, func(o any) *Opt { return &o.(*CVRdata).CompanyName }),
}}

var ctMotorVehicle = &ctype{name: "MotorVehicle", parts: []particle{
	req("licenseNumber", nsDmv, stLicense, func(o any) *string { return &o.(*MotorVehicle).LicenseNumber }),
	opt("chassisNumber", nsDmv, stText, func(o any) *Opt { return &o.(*MotorVehicle).ChassisNumber }),
}}

var ctPropertyNumber = &ctype{name: "PropertyNumber", parts: []particle{
	req("propertyNumber", nsGrd, stText, func(o any) *string { return &o.(*PropertyNumber).PropertyNumber }),
}}

var ctCaseID = &ctype{name: "CaseID", parts: []particle{
	req("caseID", nsMemo, stText, func(o any) *string { return &o.(*CaseID).CaseID }),
	req("caseSystem", nsMemo, stText, func(o any) *string { return &o.(*CaseID).CaseSystem }),
}}

var ctKLEdata = &ctype{name: "KLEdata", parts: []particle{
	req("subjectKey", nsKle, stText, func(o any) *string { return &o.(*KLEdata).SubjectKey }),
	req("version", nsKle, stText, func(o any) *string { return &o.(*KLEdata).Version }),
	opt("activityFacet", nsKle, stText, func(o any) *Opt { return &o.(*KLEdata).ActivityFacet }),
	req("label", nsKle, stText, func(o any) *string { return &o.(*KLEdata).Label }),
}}

var ctFORMdata = &ctype{name: "FORMdata", parts: []particle{
	req("taskKey", nsForm, stText, func(o any) *string { return &o.(*FORMdata).TaskKey }),
	req("version", nsForm, stText, func(o any) *string { return &o.(*FORMdata).Version }),
	opt("activityFacet", nsForm, stText, func(o any) *Opt { return &o.(*FORMdata).ActivityFacet }),
	req("label", nsForm, stText, func(o any) *string { return &o.(*FORMdata).Label }),
}}

var ctEducation = &ctype{name: "Education", parts: []particle{
	req("educationCode", nsUdd, stText, func(o any) *string { return &o.(*Education).EducationCode }),
	opt("educationName", nsUdd, stText, func(o any) *Opt { return &o.(*Education).EducationName }),
}}

var ctAdditionalContentData = &ctype{name: "AdditionalContentData", parts: []particle{
	opt("contentDataType", nsMemo, stText, func(o any) *Opt { return &o.(*AdditionalContentData).ContentDataType }),
	req("contentDataName", nsMemo, stText, func(o any) *string { return &o.(*AdditionalContentData).ContentDataName }),
	req("contentDataValue", nsMemo, stText, func(o any) *string { return &o.(*AdditionalContentData).ContentDataValue }),
}}

func fwd(o any) *ForwardData { return o.(*ForwardData) }

var ctForwardData = &ctype{name: "ForwardData", parts: []particle{
	req("messageUUID", nsMemo, stUUID, func(o any) *string { return &fwd(o).MessageUUID }),
	req("originalMessageDateTime", nsMemo, stDateTime, func(o any) *string { return &fwd(o).OriginalMessageDateTime }),
	req("originalSender", nsMemo, stText, func(o any) *string { return &fwd(o).OriginalSender }),
	opt("originalContentResponsible", nsMemo, stText, func(o any) *Opt { return &fwd(o).OriginalContentResponsible }),
	only12(opt("originalRepresentative", nsMemo, stText, func(o any) *Opt { return &fwd(o).OriginalRepresentative })),
	opt("contactPointID", nsMemo, stText, func(o any) *Opt { return &fwd(o).ContactPointID }),
	opt("comment", nsMemo, stComment, func(o any) *Opt { return &fwd(o).Comment }),
}}

func rpl(o any) *ReplyData { return o.(*ReplyData) }

var ctReplyData = &ctype{name: "ReplyData", parts: []particle{
	opt("messageID", nsMemo, stText, func(o any) *Opt { return &rpl(o).MessageID }),
	req("messageUUID", nsMemo, stUUID, func(o any) *string { return &rpl(o).MessageUUID }),
	opt("replyUUID", nsMemo, stUUID, func(o any) *Opt { return &rpl(o).ReplyUUID }),
	opt("senderID", nsMemo, stText, func(o any) *Opt { return &rpl(o).SenderID }),
	opt("recipientID", nsMemo, stText, func(o any) *Opt { return &rpl(o).RecipientID }),
	opt("caseID", nsMemo, stText, func(o any) *Opt { return &rpl(o).CaseID }),
	opt("contactPointID", nsMemo, stText, func(o any) *Opt { return &rpl(o).ContactPointID }),
	opt("generatingSystemID", nsMemo, stText, func(o any) *Opt { return &rpl(o).GeneratingSystemID }),
	opt("comment", nsMemo, stComment, func(o any) *Opt { return &rpl(o).Comment }),
	many("AdditionalReplyData", nsMemo, ctAdditionalReplyData, 0, 4, func(o any) *[]AdditionalReplyData { return &rpl(o).AdditionalReplyData }),
}}

var ctAdditionalReplyData = &ctype{name: "AdditionalReplyData", parts: []particle{
	req("label", nsMemo, stText, func(o any) *string { return &o.(*AdditionalReplyData).Label }),
	req("value", nsMemo, stText, func(o any) *string { return &o.(*AdditionalReplyData).Value }),
}}

func body(o any) *MessageBody { return o.(*MessageBody) }

var ctMessageBody = &ctype{name: "MessageBody", parts: []particle{
	req("createdDateTime", nsMemo, stDateTime, func(o any) *string { return &body(o).CreatedDateTime }),
	one("MainDocument", nsMemo, ctMainDocument, func(o any) *Document { return &body(o).MainDocument }),
	many("AdditionalDocument", nsMemo, ctAdditionalDocument, 0, 0, func(o any) *[]Document { return &body(o).AdditionalDocuments }),
	many("TechnicalDocument", nsMemo, ctTechnicalDocument, 0, 0, func(o any) *[]Document { return &body(o).TechnicalDocuments }),
}}

func doc(o any) *Document { return o.(*Document) }

var ctMainDocument = &ctype{name: "MainDocument", parts: documentParts("mainDocumentID", true)}
var ctAdditionalDocument = &ctype{name: "AdditionalDocument", parts: documentParts("additionalDocumentID", true)}
var ctTechnicalDocument = &ctype{name: "TechnicalDocument", parts: documentParts("technicalDocumentID", false)}

func documentParts(idName string, actions bool) []particle {
	ps := []particle{
		opt(idName, nsMemo, stText, func(o any) *Opt { return &doc(o).ID }),
		opt("label", nsMemo, stText, func(o any) *Opt { return &doc(o).Label }),
		many("File", nsMemo, ctFile, 1, 0, func(o any) *[]File { return &doc(o).Files }),
	}
	if actions {
		ps = append(ps, many("Action", nsMemo, ctAction, 0, 0, func(o any) *[]Action { return &doc(o).Actions }))
	}
	return ps
}

func file(o any) *File { return o.(*File) }

var ctFile = &ctype{name: "File", parts: []particle{
	req("encodingFormat", nsMemo, stText, func(o any) *string { return &file(o).EncodingFormat }),
	req("filename", nsMemo, stText, func(o any) *string { return &file(o).Filename }),
	req("language", nsMemo, stLanguage, func(o any) *string { return &file(o).Language }),
	{name: "content", ns: nsMemo, min: 1, max: 1, st: stBase64, content: func(o any) *Content { return &file(o).Content }},
}}

func act(o any) *Action { return o.(*Action) }

var ctAction = &ctype{name: "Action", parts: []particle{
	req("label", nsMemo, stText, func(o any) *string { return &act(o).Label }),
	req("actionCode", nsMemo, stText, func(o any) *string { return &act(o).ActionCode }),
	opt("startDateTime", nsMemo, stDateTime, func(o any) *Opt { return &act(o).StartDateTime }),
	opt("endDateTime", nsMemo, stDateTime, func(o any) *Opt { return &act(o).EndDateTime }),
	inChoice(maybe("Reservation", nsMemo, ctReservation, func(o any) **Reservation { return &act(o).Reservation }), 1),
	inChoice(maybe("EntryPoint", nsMemo, ctEntryPoint, func(o any) **EntryPoint { return &act(o).EntryPoint }), 1),
}}

func rsv(o any) *Reservation { return o.(*Reservation) }

var ctReservation = &ctype{name: "Reservation", parts: []particle{
	req("description", nsMemo, stText, func(o any) *string { return &rsv(o).Description }),
	req("reservationUUID", nsMemo, stUUID, func(o any) *string { return &rsv(o).ReservationUUID }),
	req("abstract", nsMemo, stText, func(o any) *string { return &rsv(o).Abstract }),
	req("location", nsMemo, stText, func(o any) *string { return &rsv(o).Location }),
	req("startDateTime", nsMemo, stDateTime, func(o any) *string { return &rsv(o).StartDateTime }),
	req("endDateTime", nsMemo, stDateTime, func(o any) *string { return &rsv(o).EndDateTime }),
	opt("organizerMail", nsMemo, stText, func(o any) *Opt { return &rsv(o).OrganizerMail }),
	opt("organizerName", nsMemo, stText, func(o any) *Opt { return &rsv(o).OrganizerName }),
}}

var ctEntryPoint = &ctype{name: "EntryPoint", parts: []particle{
	req("url", nsMemo, stURI, func(o any) *string { return &o.(*EntryPoint).URL }),
}}
