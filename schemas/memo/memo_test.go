package memo

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), "memo-samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

func codesOf(errs ValidationErrors) []Code {
	c := errs.Codes()
	slices.Sort(c)
	return c
}

func TestSamples(t *testing.T) {
	// The official examples say their data "is not correct business content":
	// placeholder IDs, a past value date, MYNDIGHEDSPOST to a CPR. Their
	// business findings are listed exactly, so a new rule shows up here.
	opts := ValidateOptions{Now: clock(testNow)}
	tests := []struct {
		file        string
		version     Version
		schemaValid bool
		codes       []Code
	}{
		{"v1.1_MeMo_Full_Example.xml", Version11, true, []Code{CodeBizPostTypeRecipient, CodeBizValueDatePast}},
		{"v1.1_MeMo_Minimum_Example.xml", Version11, true, nil},
		{"v1.1_MeMo_NemSMS.xml", Version11, true, []Code{CodeBizCPR, CodeBizCVR}},
		{"v1.1_MeMo_with_attachment.xml", Version11, true, []Code{CodeBizCPR, CodeBizCVR}},
		{"v1.2_MeMo_Full_Example.xml", Version12, true, []Code{CodeBizPostTypeRecipient}},
		{"v1.2_MeMo_Minimum_Example.xml", Version12, true, nil},
		{"v1.2_MeMo_NemSMS.xml", Version12, true, []Code{CodeBizCPR, CodeBizCVR}},
		{"v1.2_MeMo_with_attachment.xml", Version12, true, []Code{CodeBizCPR, CodeBizCVR}},
		{"v1.0_testMeMoScenarie1Eksempel.xml", VersionUnknown, false, []Code{CodeVersionUnsupported, CodeXSDUnexpectedElement}},
		{"invalid_testNamespaces.xml", VersionUnknown, false, []Code{CodeXSDAttrMissing, CodeXSDMissingElement, CodeXSDMissingElement, CodeXSDMissingElement, CodeXSDMissingElement, CodeXSDMissingElement, CodeXSDMissingElement}},
		{"invalid_testSerializeEmptyMessage.xml", VersionUnknown, false, []Code{CodeXSDAttrMissing, CodeXSDMissingElement}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, errs := Check(readSample(t, tc.file), opts)
			if m == nil {
				t.Fatal("no message")
			}
			if m.Version != tc.version {
				t.Errorf("version %v, want %v", m.Version, tc.version)
			}
			if errs.SchemaValid() != tc.schemaValid {
				t.Errorf("schema valid %v, want %v: %v", errs.SchemaValid(), tc.schemaValid, errs)
			}
			want := append([]Code(nil), tc.codes...)
			slices.Sort(want)
			if got := codesOf(errs); !slices.Equal(got, want) {
				t.Errorf("codes %v, want %v\n%v", got, want, errs)
			}
			for _, e := range errs {
				if e.Path == "" || !strings.HasPrefix(e.Path, "/Message") || e.Message == "" {
					t.Errorf("error without path or message: %#v", e)
				}
			}
		})
	}
}

func TestFullExampleModel(t *testing.T) {
	src := readSample(t, "v1.2_MeMo_Full_Example.xml")
	m, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	h := &m.Header
	checks := []struct{ name, got, want string }{
		{"messageType", h.MessageType, "DIGITALPOST"},
		{"messageUUID", h.MessageUUID, "8C2EA15D-61FB-4BA9-9366-42F8B194C114"},
		{"messageID", h.MessageID.Value, "MSG-12345"},
		{"label", h.Label, "Besked fra Børneforvaltningen"},
		{"postType", h.PostType.Value, "MYNDIGHEDSPOST"},
		{"doNotDeliverUntilDate", h.DoNotDeliverUntilDate.Value, "2025-09-15"},
		{"sender", h.Sender.SenderID + "/" + h.Sender.IDType, "12345678/CVR"},
		{"representative", h.Sender.Representative.RepresentativeID.Value, "87654321"},
		{"recipient", h.Recipient.RecipientID + "/" + h.Recipient.IDType, "2211771212/CPR"},
		{"contactPoint", h.Recipient.ContactPoint.ContactPointID, "241d39f6-998e-4929-b198-ccacbbf4b330"},
		{"contactInfo", h.Recipient.ContactPoint.ContactInfo[1].Value, "Emilie Hansen"},
		{"cpr", h.ContentData.CPRdata.CPRNumber, "2512169996"},
		{"cvr", h.ContentData.CVRdata.CVRNumber, "12345678"},
		{"kle", h.ContentData.KLEdata.SubjectKey, "00.00.00"},
		{"forward", h.ForwardData.OriginalRepresentative.Value, "Repræsentant Kommune"},
		{"reply2", h.ReplyData[1].ReplyUUID.Value, "8C2EA15D-61FB-4BA9-9366-42F8B194C114"},
		{"gln", h.Sender.AttentionData.GlobalLocationNumber.GlobalLocationNumber, "5798000012345"},
		{"address", h.Sender.AttentionData.Address.AddressPoint.GeographicNorthingMeasure.Value, "6336248.89"},
		{"url entity", m.Body.AdditionalDocuments[1].Actions[0].EntryPoint.URL, "https://registration.nemhandel.dk/NemHandelRegisterWeb/public/participant/info?key=5798009811578&keytype=GLN"},
		{"reservation", m.Body.MainDocument.Actions[1].Reservation.Location, "Gl. Landevej 61, 9000 aalborg, Rød stue"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !h.Mandatory.Bool() || h.LegalNotification.Bool() || !h.Reply.Bool() {
		t.Errorf("booleans: mandatory %v legal %v reply %v", h.Mandatory.Bool(), h.LegalNotification.Bool(), h.Reply.Bool())
	}
	if d, ok := h.DoNotDeliverUntilDate.Date(); !ok || d != (Date{2025, time.September, 15}) {
		t.Errorf("value date %v %v", d, ok)
	}
	if ts, ok := h.ReplyByDateTime.Time(); !ok || !ts.Equal(time.Date(2025, 9, 30, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("replyByDateTime %v %v", ts, ok)
	}
	var n int
	m.Files(func(doc string, f *File) {
		n++
		raw := f.Content.Raw(src)
		if string(raw) != "VGhpcyBpcyBhIHRlc3Q=" || f.Content.DecodedSize != 14 {
			t.Errorf("%s/%s content %q size %d", doc, f.Filename, raw, f.Content.DecodedSize)
		}
	})
	if n != 6 {
		t.Errorf("%d files, want 6", n)
	}
	if len(m.Body.MainDocument.Actions) != 2 || len(m.Body.AdditionalDocuments) != 2 || len(m.Body.TechnicalDocuments) != 1 {
		t.Errorf("body shape: %+v", m.Body)
	}
}

// minimal11 is a small valid 1.1 message to derive test cases from.
const minimal11 = `<?xml version="1.0" encoding="UTF-8"?>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.1" memoSchVersion="1.1.0">
<memo:MessageHeader><memo:messageType>DIGITALPOST</memo:messageType><memo:messageUUID>8c2ea15d-61fb-4ba9-9366-42f8b194c114</memo:messageUUID><memo:label>Brev</memo:label><memo:mandatory>false</memo:mandatory><memo:legalNotification>false</memo:legalNotification>
<memo:Sender><memo:senderID>12345678</memo:senderID><memo:idType>CVR</memo:idType><memo:label>Kommunen</memo:label></memo:Sender>
<memo:Recipient><memo:recipientID>2211771212</memo:recipientID><memo:idType>CPR</memo:idType></memo:Recipient></memo:MessageHeader>
<memo:MessageBody><memo:createdDateTime>2025-09-12T10:00:00Z</memo:createdDateTime><memo:MainDocument><memo:File><memo:encodingFormat>application/pdf</memo:encodingFormat><memo:filename>a.pdf</memo:filename><memo:language>da</memo:language><memo:content>VGhpcyBpcyBhIHRlc3Q=</memo:content></memo:File></memo:MainDocument></memo:MessageBody>
</memo:Message>`

func with(old, new string) string { return strings.Replace(minimal11, old, new, 1) }

func TestMinimalIsValid(t *testing.T) {
	if _, errs := Check([]byte(minimal11), ValidateOptions{Now: clock(testNow)}); errs != nil {
		t.Fatal(errs)
	}
}

func TestHostileInput(t *testing.T) {
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>`
	deep := strings.Repeat("<memo:x>", 100) + strings.Repeat("</memo:x>", 100)
	manyAttrs := `<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1"`
	for i := 0; i < 200; i++ {
		manyAttrs += " a" + itoa(i) + `="1"`
	}
	manyAttrs += "/>"
	tests := []struct {
		name string
		doc  string
		code Code
	}{
		{"empty", "", CodeXMLEmpty},
		{"only whitespace", " \n ", CodeXMLEmpty},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE memo:Message SYSTEM "http://evil/x.dtd">` + minimal11[strings.Index(minimal11, "<memo:Message"):], CodeXMLDoctype},
		{"xxe", `<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><m>&xxe;</m>`, CodeXMLEntityDeclaration},
		{"billion laughs", laughs, CodeXMLEntityDeclaration},
		{"undefined entity", with("<memo:label>Brev", "<memo:label>&nbsp;Brev"), CodeXMLUndefinedEntity},
		{"deep nesting", `<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1">` + deep + `</memo:Message>`, CodeLimitDepth},
		{"many attributes", manyAttrs, CodeLimitAttributes},
		{"invalid utf8", with("Brev", "Br\xffev"), CodeXMLInvalidUTF8},
		{"overlong utf8", with("Brev", "Br\xc0\xafev"), CodeXMLInvalidUTF8},
		{"surrogate utf8", with("Brev", "Br\xed\xa0\x80ev"), CodeXMLInvalidUTF8},
		{"control char", with("Brev", "Br\x01ev"), CodeXMLInvalidChar},
		{"U+FFFE", with("Brev", "Br\uFFFEev"), CodeXMLInvalidChar},
		{"bad char ref", with("Brev", "Br&#1;ev"), CodeXMLBadReference},
		{"malformed ref", with("Brev", "Br&#xZZ;ev"), CodeXMLBadReference},
		{"truncated", minimal11[:len(minimal11)/2], CodeXMLTruncated},
		{"truncated in tag", minimal11[:strings.Index(minimal11, "<memo:label>")+5], CodeXMLTruncated},
		{"tag mismatch", with("</memo:label>", "</memo:lable>"), CodeXMLTagMismatch},
		{"wrong root namespace", strings.Replace(minimal11, "https://DigitalPost.dk/MeMo-1", "https://DigitalPost.dk/MeMo-2", 1), CodeXSDWrongNamespace},
		{"wrong root element", `<memo:Letter xmlns:memo="https://DigitalPost.dk/MeMo-1"/>`, CodeXSDRootElement},
		{"unbound prefix", with("<memo:label>Brev</memo:label>", "<x:label>Brev</x:label>"), CodeXMLUnboundPrefix},
		{"duplicate attribute", with(`memoVersion="1.1"`, `memoVersion="1.1" memoVersion="1.1"`), CodeXMLDuplicateAttribute},
		{"duplicate expanded attribute", with(`memoVersion="1.1"`, `memoVersion="1.1" xmlns:a="urn:a" xmlns:b="urn:a" a:x="1" b:x="2"`), CodeXMLDuplicateAttribute},
		{"second root", minimal11 + "<memo:Message/>", CodeXMLOutsideRoot},
		{"text after root", minimal11 + "junk", CodeXMLOutsideRoot},
		{"utf16 bom", "\xff\xfe<\x00", CodeXMLEncoding},
		{"latin1 declaration", strings.Replace(minimal11, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1), CodeXMLEncoding},
		{"xml 1.1", strings.Replace(minimal11, `version="1.0"`, `version="1.1"`, 1), CodeXMLDeclaration},
		{"late declaration", "\n" + minimal11, CodeXMLDeclaration},
		{"cdata end in text", with("Brev", "Br]]>ev"), CodeXMLSyntax},
		{"double dash comment", with("Brev", "Br<!-- a -- b -->ev"), CodeXMLSyntax},
		{"lt in attribute", with(`memoVersion="1.1"`, `memoVersion="1<1"`), CodeXMLSyntax},
		{"unquoted attribute", with(`memoVersion="1.1"`, `memoVersion=1.1`), CodeXMLSyntax},
		{"bad name", with("<memo:label>", "<memo:1label>"), CodeXMLBadName},
		{"two colons", with("<memo:label>Brev</memo:label>", "<memo:a:label>Brev</memo:a:label>"), CodeXMLBadName},
		{"empty prefixed ns", with(`memoVersion="1.1"`, `memoVersion="1.1" xmlns:e=""`), CodeXMLNamespaceDecl},
		{"xmlns prefix declared", with(`memoVersion="1.1"`, `memoVersion="1.1" xmlns:xmlns="urn:x"`), CodeXMLNamespaceDecl},
		{"entity declaration in content", with("<memo:label>", `<!ENTITY x "y"><memo:label>`), CodeXMLEntityDeclaration},
		{"10.0 version", with(`memoVersion="1.1"`, `memoVersion="1.0"`), CodeVersionUnsupported},
		{"unknown version", with(`memoVersion="1.1"`, `memoVersion="1.3"`), CodeVersionUnknown},
		{"bad decimal version", with(`memoVersion="1.1"`, `memoVersion="v1"`), CodeXSDDecimal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Check([]byte(tc.doc), ValidateOptions{Now: clock(testNow)})
			if !errs.Has(tc.code) {
				t.Fatalf("want %s, got %v", tc.code, errs)
			}
			if errs.SchemaValid() {
				t.Fatalf("hostile input judged schema-valid: %v", errs)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	big := with("VGhpcyBpcyBhIHRlc3Q=", strings.Repeat("QUJD", 1000))
	tests := []struct {
		name   string
		limits Limits
		doc    string
		code   Code
	}{
		{"size", Limits{MaxBytes: 1000}, minimal11, CodeLimitSize},
		{"depth", Limits{MaxDepth: 3}, minimal11, CodeLimitDepth},
		{"elements", Limits{MaxElements: 10}, minimal11, CodeLimitElements},
		{"attributes", Limits{MaxAttributes: 2}, minimal11, CodeLimitAttributes},
		{"text length", Limits{MaxTextLength: 100}, with("<memo:label>Brev", "<memo:label>"+strings.Repeat("x", 101)), CodeLimitTextLength},
		{"text length with references", Limits{MaxTextLength: 100}, with("<memo:label>Brev", "<memo:label>"+strings.Repeat("&amp;", 101)), CodeLimitTextLength},
		{"attribute length", Limits{MaxTextLength: 100}, with("1.1.0", strings.Repeat("1", 120)), CodeLimitTextLength},
		{"content is not text", Limits{MaxTextLength: 100}, big, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewParser()
			p.Limits = tc.limits
			_, err := p.Parse([]byte(tc.doc))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("want %s, got %v", tc.code, err)
			}
		})
	}
	// The package-level limit on the whole shipment.
	if DefaultLimits().MaxBytes != 99_500_000 {
		t.Fatal("default size limit must be 99.5 MB")
	}
}

func TestNamespaceForms(t *testing.T) {
	def := strings.Replace(strings.ReplaceAll(minimal11, "memo:", ""), "xmlns:memo=", "xmlns=", 1)
	other := strings.Replace(strings.ReplaceAll(minimal11, "memo:", "dp:"), "xmlns:memo=", "xmlns:dp=", 1)
	nested := strings.Replace(minimal11, "<memo:Sender>", `<s:Sender xmlns:s="https://DigitalPost.dk/MeMo-1">`, 1)
	nested = strings.Replace(nested, "</memo:Sender>", "</s:Sender>", 1)
	for name, doc := range map[string]string{"default": def, "other prefix": other, "nested redeclaration": nested} {
		t.Run(name, func(t *testing.T) {
			m, errs := Check([]byte(doc), ValidateOptions{Now: clock(testNow)})
			if errs != nil {
				t.Fatalf("%v\n%s", errs, doc)
			}
			if m.Header.Sender.SenderID != "12345678" {
				t.Fatalf("sender %q", m.Header.Sender.SenderID)
			}
		})
	}
}

func TestTextHandling(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a&amp;b&lt;&gt;&apos;&quot;", `a&b<>'"`},
		{"&#x41;&#66;&#x1F600;", "AB😀"},
		{"<![CDATA[<x> & y]]>", "<x> & y"},
		{"a<!-- c -->b<?pi x?>c", "abc"},
		{"a\r\nb\rc", "a\nb\nc"},
		{"a&#13;&#10;b", "a\r\nb"},
		{"  spaced  ", "  spaced  "},
		{"ø", "ø"},
	}
	for _, tc := range tests {
		m, err := Parse([]byte(with("<memo:label>Brev</memo:label>", "<memo:label>"+tc.in+"</memo:label>")))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if m.Header.Label != tc.want {
			t.Errorf("%q: label %q, want %q", tc.in, m.Header.Label, tc.want)
		}
	}
	// An empty boolean with a default holds the default; CDATA makes it "".
	m, _ := Parse([]byte(with("<memo:mandatory>false</memo:mandatory>", "<memo:mandatory/>")))
	if m.Header.Mandatory != Some("false") {
		t.Errorf("defaulted mandatory = %+v", m.Header.Mandatory)
	}
	_, errs := Check([]byte(with("<memo:mandatory>false</memo:mandatory>", "<memo:mandatory><![CDATA[]]></memo:mandatory>")), ValidateOptions{SkipBusiness: true})
	if !errs.Has(CodeXSDBoolean) {
		t.Errorf("CDATA-empty boolean: %v", errs)
	}
}

func TestXSDFindings(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		code Code
		path string
	}{
		{"missing label", with("<memo:label>Brev</memo:label>", ""), CodeXSDMissingElement, "/Message/MessageHeader/label"},
		{"order", with("<memo:label>Brev</memo:label><memo:mandatory>false</memo:mandatory>", "<memo:mandatory>false</memo:mandatory><memo:label>Brev</memo:label>"), CodeXSDElementOrder, "/Message/MessageHeader/label"},
		{"duplicate", with("<memo:label>Brev</memo:label>", "<memo:label>Brev</memo:label><memo:label>Brev</memo:label>"), CodeXSDTooMany, "/Message/MessageHeader/label[2]"},
		{"unknown", with("<memo:label>Brev</memo:label>", "<memo:label>Brev</memo:label><memo:x/>"), CodeXSDUnexpectedElement, "/Message/MessageHeader/x"},
		{"wrong ns child", with("<memo:label>Brev</memo:label>", `<g:label xmlns:g="https://data.gov.dk/model/core/">Brev</g:label>`), CodeXSDWrongNamespace, "/Message/MessageHeader/label"},
		{"representative in 1.1", with("<memo:label>Kommunen</memo:label></memo:Sender>", "<memo:label>Kommunen</memo:label><memo:Representative/></memo:Sender>"), CodeXSDUnexpectedElement, "/Message/MessageHeader/Sender/Representative"},
		{"text in element-only", with("<memo:Sender>", "<memo:Sender>x"), CodeXSDTextNotAllowed, "/Message/MessageHeader/Sender"},
		{"element in simple", with("<memo:label>Brev</memo:label>", "<memo:label>B<memo:b/>rev</memo:label>"), CodeXSDElementInSimple, "/Message/MessageHeader/label"},
		{"attribute", with("<memo:label>", `<memo:label foo="1">`), CodeXSDAttrNotAllowed, "/Message/MessageHeader/label/@foo"},
		{"schVersion missing", with(` memoSchVersion="1.1.0"`, ""), CodeXSDAttrMissing, "/Message/@memoSchVersion"},
		{"schVersion in 1.2", with(`memoVersion="1.1"`, `memoVersion="1.2"`), CodeXSDAttrNotAllowed, "/Message/@memoSchVersion"},
		{"mandatory required in 1.1", with("<memo:mandatory>false</memo:mandatory>", ""), CodeXSDMissingElement, "/Message/MessageHeader/mandatory"},
		{"uuid pattern", with("4ba9", "1ba9"), CodeXSDPattern, "/Message/MessageHeader/messageUUID"},
		{"enumeration", with(">DIGITALPOST<", ">LETTER<"), CodeXSDEnumeration, "/Message/MessageHeader/messageType"},
		{"datetime Z", with("2025-09-12T10:00:00Z", "2025-09-12T10:00:00+02:00"), CodeXSDPattern, "/Message/MessageBody/createdDateTime"},
		{"datetime", with("2025-09-12T10:00:00Z", "2025-09-31T10:00:00Z"), CodeXSDDateTime, "/Message/MessageBody/createdDateTime"},
		{"date", with("<memo:mandatory>", "<memo:doNotDeliverUntilDate>2025-02-29</memo:doNotDeliverUntilDate><memo:mandatory>"), CodeXSDDate, "/Message/MessageHeader/doNotDeliverUntilDate"},
		{"boolean", with("<memo:mandatory>false", "<memo:mandatory>nej"), CodeXSDBoolean, "/Message/MessageHeader/mandatory"},
		{"language", with(">da<", ">dan<"), CodeXSDMaxLength, "/Message/MessageBody/MainDocument/File[1]/language"},
		{"base64", with("VGhpcyBpcyBhIHRlc3Q=", "VGhpcyBpcyBhIHRlc3Q"), CodeXSDBase64, "/Message/MessageBody/MainDocument/File[1]/content"},
		{"max length", with("<memo:label>Brev", "<memo:label>"+strings.Repeat("x", 257)), CodeXSDMaxLength, "/Message/MessageHeader/label"},
		{"missing file", with("<memo:MainDocument><memo:File>", "<memo:MainDocument><memo:Filex>"), CodeXMLTagMismatch, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Check([]byte(tc.doc), ValidateOptions{SkipBusiness: true})
			for _, e := range errs {
				if e.Code == tc.code && (tc.path == "" || e.Path == tc.path) {
					return
				}
			}
			t.Fatalf("want %s at %s, got %v", tc.code, tc.path, errs)
		})
	}
}

func TestBusinessRules(t *testing.T) {
	// 2025-09-12 10:30 UTC is 12:30 in Copenhagen; 23:30 UTC is already the 13th there.
	hdr := func(extra string) string {
		return with("<memo:mandatory>", extra+"<memo:mandatory>")
	}
	body := func(s string) string {
		return strings.Replace(s, s[strings.Index(s, "<memo:MessageBody>"):strings.Index(s, "</memo:MessageBody>")+len("</memo:MessageBody>")], "", 1)
	}
	nemsms := body(strings.Replace(with("DIGITALPOST", "NEMSMS"), "<memo:mandatory>", "<memo:notification>Husk tandlægen</memo:notification><memo:mandatory>", 1))
	tests := []struct {
		name string
		doc  string
		now  time.Time
		opts ValidateOptions
		want []Code
	}{
		{"value date today", hdr("<memo:doNotDeliverUntilDate>2025-09-12</memo:doNotDeliverUntilDate>"), testNow, ValidateOptions{}, nil},
		{"value date +5", hdr("<memo:doNotDeliverUntilDate>2025-09-17</memo:doNotDeliverUntilDate>"), testNow, ValidateOptions{}, nil},
		{"value date +6", hdr("<memo:doNotDeliverUntilDate>2025-09-18</memo:doNotDeliverUntilDate>"), testNow, ValidateOptions{}, []Code{CodeBizValueDateTooFar}},
		{"value date past", hdr("<memo:doNotDeliverUntilDate>2025-09-11</memo:doNotDeliverUntilDate>"), testNow, ValidateOptions{}, []Code{CodeBizValueDatePast}},
		{"value date past in Copenhagen", hdr("<memo:doNotDeliverUntilDate>2025-09-12</memo:doNotDeliverUntilDate>"), time.Date(2025, 9, 12, 23, 30, 0, 0, time.UTC), ValidateOptions{}, []Code{CodeBizValueDatePast}},
		{"value date horizon option", hdr("<memo:doNotDeliverUntilDate>2025-09-18</memo:doNotDeliverUntilDate>"), testNow, ValidateOptions{MaxValueDateDays: 10}, nil},
		{"uuid mismatch", minimal11, testNow, ValidateOptions{ExpectedUUID: "00000000-0000-4000-8000-000000000000"}, []Code{CodeBizUUIDMismatch}},
		{"uuid match any case", minimal11, testNow, ValidateOptions{ExpectedUUID: "8C2EA15D-61FB-4BA9-9366-42F8B194C114"}, nil},
		{"cpr", with("2211771212", "221177121"), testNow, ValidateOptions{}, []Code{CodeBizCPR}},
		{"cvr", with("12345678", "1234567A"), testNow, ValidateOptions{}, []Code{CodeBizCVR}},
		{"id type", with("<memo:idType>CPR", "<memo:idType>MyndighedsID"), testNow, ValidateOptions{}, []Code{CodeBizIDType}},
		{"nemsms ok", nemsms, testNow, ValidateOptions{}, nil},
		{"nemsms with body", strings.Replace(with("DIGITALPOST", "NEMSMS"), "<memo:mandatory>", "<memo:notification>x</memo:notification><memo:mandatory>", 1), testNow, ValidateOptions{}, []Code{CodeBizNemSMSBody}},
		{"nemsms no text", body(with("DIGITALPOST", "NEMSMS")), testNow, ValidateOptions{}, []Code{CodeBizNemSMSNotification}},
		{"nemsms to company", strings.Replace(strings.Replace(nemsms, "2211771212", "87654321", 1), "<memo:idType>CPR", "<memo:idType>CVR", 1), testNow, ValidateOptions{}, []Code{CodeBizNemSMSRecipient}},
		{"digitalpost without body", body(minimal11), testNow, ValidateOptions{}, []Code{CodeBizDigitalPostBody}},
		{"post type unknown", with("</memo:legalNotification>", "</memo:legalNotification><memo:postType>BREV</memo:postType>"), testNow, ValidateOptions{}, []Code{CodeBizPostType}},
		{"post type to CPR", with("</memo:legalNotification>", "</memo:legalNotification><memo:postType>VIRKSOMHEDSPOST</memo:postType>"), testNow, ValidateOptions{}, []Code{CodeBizPostTypeRecipient}},
		{"authority post without contact point", strings.Replace(strings.Replace(with("</memo:legalNotification>", "</memo:legalNotification><memo:postType>MYNDIGHEDSPOST</memo:postType>"), "2211771212", "87654321", 1), "<memo:idType>CPR", "<memo:idType>CVR", 1), testNow, ValidateOptions{}, []Code{CodeBizAuthorityContactPoint}},
		{"action code", with("</memo:File>", "</memo:File><memo:Action><memo:label>x</memo:label><memo:actionCode>KLIK</memo:actionCode></memo:Action>"), testNow, ValidateOptions{}, []Code{CodeBizActionCode}},
		{"encoding format", with("application/pdf", "pdf"), testNow, ValidateOptions{}, []Code{CodeBizEncodingFormat}},
		{"language case", with(">da<", ">DA<"), testNow, ValidateOptions{}, []Code{CodeBizLanguage}},
		{"stray base64", with("VGhpcyBpcyBhIHRlc3Q=", "VGhp!cyBpcyBhIHRlc3Q="), testNow, ValidateOptions{}, []Code{CodeBizBase64Strict}},
		{"skip business", with("2211771212", "1"), testNow, ValidateOptions{SkipBusiness: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = clock(tc.now)
			_, errs := Check([]byte(tc.doc), tc.opts)
			if !errs.SchemaValid() {
				t.Fatalf("schema-invalid test case: %v", errs)
			}
			want := append([]Code(nil), tc.want...)
			slices.Sort(want)
			if got := codesOf(errs); !slices.Equal(got, want) {
				t.Fatalf("codes %v, want %v: %v", got, want, errs)
			}
		})
	}
}

func TestUUIDRules(t *testing.T) {
	// The XSD pattern already encodes version 4 and the RFC 4122 variant;
	// the business rule is the same predicate under its own code.
	for _, s := range []string{"8c2ea15d-61fb-4ba9-9366-42f8b194c114", "8C2EA15D-61FB-4BA9-B366-42F8B194C114"} {
		if !IsUUIDv4(s) || !matchUUIDPattern(s) {
			t.Errorf("%s should pass both", s)
		}
	}
	for _, s := range []string{"8c2ea15d-61fb-1ba9-9366-42f8b194c114", "8c2ea15d-61fb-4ba9-c366-42f8b194c114", "8c2ea15d61fb4ba9936642f8b194c114", " 8c2ea15d-61fb-4ba9-9366-42f8b194c11"} {
		if IsUUIDv4(s) || matchUUIDPattern(s) {
			t.Errorf("%s should fail both", s)
		}
	}
	_, errs := Check([]byte(with("4ba9", "1ba9")), ValidateOptions{Now: clock(testNow)})
	if !errs.Has(CodeXSDPattern) || !errs.Has(CodeBizMessageUUIDNotV4) {
		t.Fatalf("want both codes: %v", errs)
	}
}

func TestErrorsAs(t *testing.T) {
	_, errs := Check([]byte(with("4ba9", "1ba9")), ValidateOptions{})
	var err error = errs
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeXSDPattern || e.Path != "/Message/MessageHeader/messageUUID" {
		t.Fatalf("errors.As: %v %+v", err, e)
	}
	if !strings.Contains(errs.Error(), "XSD_PATTERN at /Message/MessageHeader/messageUUID") {
		t.Fatalf("Error(): %s", errs.Error())
	}
}

func TestMaxErrors(t *testing.T) {
	doc := with("<memo:label>Brev</memo:label>", "<memo:label>Brev</memo:label>"+strings.Repeat("<memo:x/>", 300))
	_, errs := Check([]byte(doc), ValidateOptions{})
	if len(errs) != DefaultMaxErrors+1 || errs[len(errs)-1].Code != CodeLimitErrorCount {
		t.Fatalf("%d errors, last %v", len(errs), errs[len(errs)-1])
	}
	_, errs = Check([]byte(doc), ValidateOptions{MaxErrors: 5})
	if len(errs) != 6 {
		t.Fatalf("%d errors with MaxErrors 5", len(errs))
	}
}

func TestSerializeRoundTrip(t *testing.T) {
	shared := sharedDir(t)
	files, _ := filepath.Glob(filepath.Join(shared, "memo-samples", "v1.[12]_*.xml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, _ := os.ReadFile(f)
			m, err := Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Serialize(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			m2, errs := Check(out, ValidateOptions{SkipBusiness: true})
			if !errs.SchemaValid() {
				t.Fatalf("serialized message invalid: %v\n%s", errs, out)
			}
			if !sameModel(m, m2) {
				t.Fatalf("round trip changed the model\n%s", out)
			}
			out2, _ := Serialize(nil, m2)
			if !bytes.Equal(out, out2) {
				t.Fatal("serialization is not canonical (second pass differs)")
			}
		})
	}
}

// sameModel compares two models ignoring parse bookkeeping and content offsets.
func sameModel(a, b *Message) bool {
	ca, cb := *a, *b
	for _, m := range []*Message{&ca, &cb} {
		m.src, m.docErrs, m.Size = nil, nil, 0
	}
	var ra, rb [][]byte
	a.Files(func(_ string, f *File) { ra = append(ra, f.Content.Raw(a.src)) })
	b.Files(func(_ string, f *File) { rb = append(rb, f.Content.Raw(b.src)) })
	if !reflect.DeepEqual(ra, rb) {
		return false
	}
	strip := func(m *Message) {
		if m.Body == nil {
			return
		}
		body := *m.Body
		m.Body = &body
		docs := append([]Document{body.MainDocument}, append(append([]Document(nil), body.AdditionalDocuments...), body.TechnicalDocuments...)...)
		for i := range docs {
			files := append([]File(nil), docs[i].Files...)
			for k := range files {
				files[k].Content = Content{DecodedSize: files[k].Content.DecodedSize}
			}
			docs[i].Files = files
		}
		body.MainDocument = docs[0]
		n := len(body.AdditionalDocuments)
		body.AdditionalDocuments = docs[1 : 1+n]
		body.TechnicalDocuments = docs[1+n:]
		if len(body.AdditionalDocuments) == 0 {
			body.AdditionalDocuments = nil
		}
		if len(body.TechnicalDocuments) == 0 {
			body.TechnicalDocuments = nil
		}
		*m.Body = body
	}
	strip(&ca)
	strip(&cb)
	return reflect.DeepEqual(ca, cb)
}

func TestDownconvert(t *testing.T) {
	src := readSample(t, "v1.2_MeMo_Full_Example.xml")
	m, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	out, losses := Downconvert(m)
	var codes []LossCode
	for _, l := range losses {
		codes = append(codes, l.Code)
		if l.Path == "" || l.Value == "" {
			t.Errorf("loss without path or value: %+v", l)
		}
	}
	if !slices.Equal(codes, []LossCode{LossRepresentative, LossOriginalRepresentative}) {
		t.Fatalf("losses %v", codes)
	}
	if m.Header.Sender.Representative == nil || !m.Header.ForwardData.OriginalRepresentative.Set {
		t.Fatal("Downconvert changed its input")
	}
	b, err := Serialize(nil, out)
	if err != nil {
		t.Fatal(err)
	}
	m11, errs := Check(b, ValidateOptions{SkipBusiness: true})
	if errs != nil || m11.Version != Version11 || m11.MemoSchVersion.Value != "1.1.0" {
		t.Fatalf("down-converted message: %v %v\n%s", m11.Version, errs, b)
	}
	// Attachments are copied byte for byte.
	var raws [][]byte
	m11.Files(func(_ string, f *File) { raws = append(raws, f.Content.Raw(b)) })
	if len(raws) != 6 || string(raws[0]) != "VGhpcyBpcyBhIHRlc3Q=" {
		t.Fatalf("attachments: %q", raws)
	}

	// Absent mandatory/legalNotification become their default; a 160-character
	// notification is cut with a loss.
	min12, _ := Parse(readSample(t, "v1.2_MeMo_Minimum_Example.xml"))
	min12.Header.Notification = Some(strings.Repeat("é", 160))
	o, losses := Downconvert(min12)
	if len(losses) != 1 || losses[0].Code != LossNotificationTruncated || charLen(losses[0].Value) != 10 {
		t.Fatalf("losses %+v", losses)
	}
	if o.Header.Mandatory != Some("false") || o.Header.LegalNotification != Some("false") || charLen(o.Header.Notification.Value) != 150 {
		t.Fatalf("header %+v", o.Header)
	}
	// A 1.1 message is returned as is; ForRecipient never rewrites without need.
	m11b, _ := Parse([]byte(minimal11))
	if same, l := Downconvert(m11b); same != m11b || l != nil {
		t.Fatal("1.1 message was converted")
	}
	got, _, _ := ForRecipient(src, m, Version12)
	if &got[0] != &src[0] {
		t.Fatal("ForRecipient copied a message that needs no conversion")
	}
	conv, l, err := ForRecipient(src, m, Version11)
	if err != nil || len(l) != 2 || !bytes.Contains(conv, []byte(`memoSchVersion="1.1.0"`)) {
		t.Fatalf("ForRecipient 1.1: %v %v", l, err)
	}
}

func TestBuildInCode(t *testing.T) {
	m := NewMessage(Version12)
	m.Header = MessageHeader{
		MessageType: "DIGITALPOST", MessageUUID: "8c2ea15d-61fb-4ba9-9366-42f8b194c114", Label: "Brev & svar",
		Sender:    Sender{SenderID: "12345678", IDType: "CVR", Label: "Kommunen"},
		Recipient: Recipient{RecipientID: "2211771212", IDType: "CPR"},
	}
	m.Body = &MessageBody{CreatedDateTime: "2025-09-12T10:00:00Z", MainDocument: Document{Files: []File{{
		EncodingFormat: "text/plain", Filename: "a.txt", Language: "da",
		Content: Content{Inline: []byte(base64.StdEncoding.EncodeToString([]byte("hej")))},
	}}}}
	if errs := Validate(m, ValidateOptions{Now: clock(testNow)}); errs != nil {
		t.Fatal(errs)
	}
	out, err := Serialize(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := Check(out, ValidateOptions{Now: clock(testNow)}); errs != nil {
		t.Fatalf("%v\n%s", errs, out)
	}
	m.Header.Label = "bad\x01"
	m.Header.Sender.ContactPoint = &ContactPoint{ContactPointID: "x", ContactInfo: make([]ContactInfo, 3)}
	errs := Validate(m, ValidateOptions{Now: clock(testNow)})
	if !errs.Has(CodeXMLInvalidChar) || !errs.Has(CodeXSDTooMany) {
		t.Fatalf("%v", errs)
	}
	m11 := NewMessage(Version11)
	m11.Header = m.Header
	m11.Header.Label = "x"
	m11.Header.Sender.ContactPoint = nil
	m11.Header.Sender.Representative = &Representative{Label: Some("R")}
	errs = Validate(m11, ValidateOptions{SkipBusiness: true})
	if !errs.Has(CodeXSDUnexpectedElement) || !errs.Has(CodeXSDMissingElement) {
		t.Fatalf("1.1 rules on a model: %v", errs)
	}
}

func TestGenerator(t *testing.T) {
	cfg := GenConfig{Seed: 42, Now: testNow, AttachmentSize: SizeDist{Kind: SizeLogNormal, Bytes: 2000}, RichShare: 0.5, ExtraFiles: 1,
		SenderCVRs: []string{"11223344"}, CitizenCPRs: []string{"0101010101", "0202020202"}, CompanyCVRs: []string{"55667788"},
		Authorities: []Authority{{CVR: "99887766", ContactPoints: []string{"cp-1"}}}}
	a, b := NewGenerator(cfg), NewGenerator(cfg)
	seen := map[UUID]bool{}
	kinds := map[string]int{}
	for i := 0; i < 500; i++ {
		x, ux := a.Next(nil)
		y, uy := b.Next(nil)
		if !bytes.Equal(x, y) || ux != uy {
			t.Fatal("same seed, different output")
		}
		if seen[ux] {
			t.Fatal("duplicate messageUUID")
		}
		seen[ux] = true
		m, errs := Check(x, ValidateOptions{Now: clock(testNow), ExpectedUUID: ux.String()})
		if errs != nil {
			t.Fatalf("message %d: %v\n%s", i, errs, x)
		}
		if m.Header.Sender.SenderID != "11223344" {
			t.Fatalf("sender %s", m.Header.Sender.SenderID)
		}
		switch m.Header.Recipient.RecipientID {
		case "0101010101", "0202020202", "55667788", "99887766":
		default:
			t.Fatalf("recipient %s not from the configured lists", m.Header.Recipient.RecipientID)
		}
		kinds[m.Version.String()+"/"+m.Header.MessageType]++
		if m.Header.PostType.Value == "MYNDIGHEDSPOST" {
			kinds["authority"]++
		}
		if m.Header.DoNotDeliverUntilDate.Set {
			kinds["valuedate"]++
		}
	}
	for _, k := range []string{"1.1/DIGITALPOST", "1.2/DIGITALPOST", "1.1/NEMSMS", "1.2/NEMSMS", "authority", "valuedate"} {
		if kinds[k] == 0 {
			t.Errorf("no %s messages in 500: %v", k, kinds)
		}
	}
	c := NewGenerator(GenConfig{Seed: 43, Now: testNow})
	if x, _ := c.Next(nil); bytes.Equal(x, func() []byte { y, _ := NewGenerator(cfg).Next(nil); return y }()) {
		t.Fatal("different seeds, same output")
	}
	// Appends to the caller's buffer.
	buf := []byte("prefix")
	out, _ := NewGenerator(cfg).Next(buf)
	if !bytes.HasPrefix(out, []byte("prefix<?xml")) {
		t.Fatal("Next does not append")
	}
	// Fixed sizes are exact.
	f := NewGenerator(GenConfig{Seed: 1, Now: testNow, NemSMSShare: -1, AttachmentSize: SizeDist{Kind: SizeFixed, Bytes: 1 << 20}})
	x, _ := f.Next(nil)
	m, _ := Parse(x)
	if m.Body.MainDocument.Files[0].Content.DecodedSize != 1<<20 {
		t.Fatalf("decoded size %d", m.Body.MainDocument.Files[0].Content.DecodedSize)
	}
}

func TestParseSizeDist(t *testing.T) {
	tests := map[string]SizeDist{
		"none":                               {},
		"fixed:64KiB":                        {Kind: SizeFixed, Bytes: 64 << 10},
		"lognormal:200KB":                    {Kind: SizeLogNormal, Bytes: 200_000},
		"lognormal:1MiB,sigma=1.5,max=10MiB": {Kind: SizeLogNormal, Bytes: 1 << 20, Sigma: 1.5, Max: 10 << 20},
	}
	for in, want := range tests {
		got, err := ParseSizeDist(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"fixed", "uniform:1", "fixed:-1", "lognormal:1KB,sigma=x"} {
		if _, err := ParseSizeDist(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// Allocations of Parse+Validate must not grow with attachment size.
func TestAllocsIndependentOfAttachmentSize(t *testing.T) {
	mk := func(n int) []byte {
		return []byte(with("VGhpcyBpcyBhIHRlc3Q=", base64.StdEncoding.EncodeToString(make([]byte, n))))
	}
	small, large := mk(1<<10), mk(10<<20)
	p := NewParser()
	count := func(doc []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			m, err := p.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			if errs := Validate(m, ValidateOptions{Now: clock(testNow)}); errs != nil {
				t.Fatal(errs)
			}
		})
	}
	if a, b := count(small), count(large); a != b {
		t.Fatalf("allocations: %v with 1 KiB, %v with 10 MiB", a, b)
	}
}

func TestParseReader(t *testing.T) {
	m, data, err := ParseReader(strings.NewReader(minimal11))
	if err != nil || m.Header.Label != "Brev" || string(data) != minimal11 {
		t.Fatalf("%v %v", m, err)
	}
}

func TestParserReuse(t *testing.T) {
	p := NewParser()
	a, err := p.Parse([]byte(minimal11))
	if err != nil {
		t.Fatal(err)
	}
	label := a.Header.Label
	if _, err := p.Parse(readSample(t, "v1.2_MeMo_Full_Example.xml")); err != nil {
		t.Fatal(err)
	}
	if a.Header.Label != label || a.Header.Label != "Brev" {
		t.Fatal("a later parse changed an earlier message")
	}
}
