package memo

import (
	"bytes"
	"encoding/xml"
	"os"
	"slices"
	"testing"
	"time"
)

// Benchmarks: Parse+Validate against encoding/xml unmarshalling into
// equivalent structs, on the same inputs in the same run.
//
//	go test ./schemas/memo -run '^$' -bench . -benchtime 2s

// xmlMessage and friends mirror the model for encoding/xml (local names;
// encoding/xml matches them in any namespace).
type xmlOptStr = string

type xmlMessage struct {
	XMLName        xml.Name  `xml:"Message"`
	MemoVersion    string    `xml:"memoVersion,attr"`
	MemoSchVersion string    `xml:"memoSchVersion,attr"`
	Header         xmlHeader `xml:"MessageHeader"`
	Body           *xmlBody  `xml:"MessageBody"`
}

type xmlHeader struct {
	MessageType            string         `xml:"messageType"`
	MessageUUID            string         `xml:"messageUUID"`
	MessageID              xmlOptStr      `xml:"messageID"`
	MessageCode            xmlOptStr      `xml:"messageCode"`
	Label                  string         `xml:"label"`
	Notification           xmlOptStr      `xml:"notification"`
	AdditionalNotification xmlOptStr      `xml:"additionalNotification"`
	Reply                  *bool          `xml:"reply"`
	ReplyByDateTime        xmlOptStr      `xml:"replyByDateTime"`
	DoNotDeliverUntilDate  xmlOptStr      `xml:"doNotDeliverUntilDate"`
	Mandatory              *bool          `xml:"mandatory"`
	LegalNotification      *bool          `xml:"legalNotification"`
	PostType               xmlOptStr      `xml:"postType"`
	Sender                 xmlParty       `xml:"Sender"`
	Recipient              xmlParty       `xml:"Recipient"`
	ContentData            *xmlContent    `xml:"ContentData"`
	ForwardData            *xmlForward    `xml:"ForwardData"`
	ReplyData              []xmlReplyData `xml:"ReplyData"`
}

type xmlParty struct {
	SenderID       string             `xml:"senderID"`
	RecipientID    string             `xml:"recipientID"`
	IDType         string             `xml:"idType"`
	IDTypeLabel    string             `xml:"idTypeLabel"`
	Label          string             `xml:"label"`
	AttentionData  *xmlAttention      `xml:"AttentionData"`
	ContactPoint   *xmlContactPoint   `xml:"ContactPoint"`
	Representative *xmlRepresentative `xml:"Representative"`
}

type xmlRepresentative struct {
	RepresentativeID, IDType, IDTypeLabel, Label string
}

type xmlContactPoint struct {
	ContactGroup   string `xml:"contactGroup"`
	ContactPointID string `xml:"contactPointID"`
	Label          string `xml:"label"`
	ContactInfo    []struct {
		Label string `xml:"label"`
		Value string `xml:"value"`
	} `xml:"ContactInfo"`
}

type xmlIDLabel struct {
	ID    string `xml:",any"`
	Label string `xml:"label"`
}

type xmlAttention struct {
	AttentionPerson *struct {
		PersonID string `xml:"personID"`
		Label    string `xml:"label"`
	} `xml:"AttentionPerson"`
	ProductionUnit *struct {
		Number int64  `xml:"productionUnitNumber"`
		Name   string `xml:"productionUnitName"`
	} `xml:"ProductionUnit"`
	GlobalLocationNumber *struct {
		Number   int64  `xml:"globalLocationNumber"`
		Location string `xml:"location"`
	} `xml:"GlobalLocationNumber"`
	EMail *struct {
		Address string `xml:"emailAddress"`
		Agent   string `xml:"relatedAgent"`
	} `xml:"EMail"`
	SEnumber *struct {
		Number  string `xml:"seNumber"`
		Company string `xml:"companyName"`
	} `xml:"SEnumber"`
	Telephone *struct {
		Number string `xml:"telephoneNumber"`
		Agent  string `xml:"relatedAgent"`
	} `xml:"Telephone"`
	EID *struct {
		EID   string `xml:"eID"`
		Label string `xml:"label"`
	} `xml:"EID"`
	ContentResponsible *struct {
		ID    string `xml:"contentResponsibleID"`
		Label string `xml:"label"`
	} `xml:"ContentResponsible"`
	GeneratingSystem *struct {
		ID    string `xml:"generatingSystemID"`
		Label string `xml:"label"`
	} `xml:"GeneratingSystem"`
	SORdata *struct {
		ID   string `xml:"sorIdentifier"`
		Name string `xml:"entryName"`
	} `xml:"SORdata"`
	Address             *xmlAddress `xml:"Address"`
	UnstructuredAddress *struct {
		Unstructured string `xml:"unstructured"`
	} `xml:"UnstructuredAddress"`
}

type xmlAddress struct {
	ID           string `xml:"id"`
	AddressLabel string `xml:"addressLabel"`
	HouseNumber  string `xml:"houseNumber"`
	Door         string `xml:"door"`
	Floor        string `xml:"floor"`
	CO           string `xml:"co"`
	ZipCode      string `xml:"zipCode"`
	City         string `xml:"city"`
	Country      string `xml:"country"`
	AddressPoint *struct {
		E string `xml:"geographicEastingMeasure"`
		N string `xml:"geographicNorthingMeasure"`
		H string `xml:"geographicHeightMeasure"`
	} `xml:"AddressPoint"`
}

type xmlContent struct {
	CPRdata *struct {
		Number string `xml:"cprNumber"`
		Name   string `xml:"name"`
	} `xml:"CPRdata"`
	CVRdata *struct {
		Number  string `xml:"cvrNumber"`
		Company string `xml:"companyName"`
	} `xml:"CVRdata"`
	MotorVehicle *struct {
		License string `xml:"licenseNumber"`
		Chassis string `xml:"chassisNumber"`
	} `xml:"MotorVehicle"`
	PropertyNumber *struct {
		Number string `xml:"propertyNumber"`
	} `xml:"PropertyNumber"`
	CaseID *struct {
		CaseID     string `xml:"caseID"`
		CaseSystem string `xml:"caseSystem"`
	} `xml:"CaseID"`
	KLEdata   *xmlClassification `xml:"KLEdata"`
	FORMdata  *xmlClassification `xml:"FORMdata"`
	Education *struct {
		Code string `xml:"educationCode"`
		Name string `xml:"educationName"`
	} `xml:"Education"`
	Address               *xmlAddress `xml:"Address"`
	AdditionalContentData []struct {
		Type  string `xml:"contentDataType"`
		Name  string `xml:"contentDataName"`
		Value string `xml:"contentDataValue"`
	} `xml:"AdditionalContentData"`
}

type xmlClassification struct {
	SubjectKey    string `xml:"subjectKey"`
	TaskKey       string `xml:"taskKey"`
	Version       string `xml:"version"`
	ActivityFacet string `xml:"activityFacet"`
	Label         string `xml:"label"`
}

type xmlForward struct {
	MessageUUID                string `xml:"messageUUID"`
	OriginalMessageDateTime    string `xml:"originalMessageDateTime"`
	OriginalSender             string `xml:"originalSender"`
	OriginalContentResponsible string `xml:"originalContentResponsible"`
	OriginalRepresentative     string `xml:"originalRepresentative"`
	ContactPointID             string `xml:"contactPointID"`
	Comment                    string `xml:"comment"`
}

type xmlReplyData struct {
	MessageID           string `xml:"messageID"`
	MessageUUID         string `xml:"messageUUID"`
	ReplyUUID           string `xml:"replyUUID"`
	SenderID            string `xml:"senderID"`
	RecipientID         string `xml:"recipientID"`
	CaseID              string `xml:"caseID"`
	ContactPointID      string `xml:"contactPointID"`
	GeneratingSystemID  string `xml:"generatingSystemID"`
	Comment             string `xml:"comment"`
	AdditionalReplyData []struct {
		Label string `xml:"label"`
		Value string `xml:"value"`
	} `xml:"AdditionalReplyData"`
}

type xmlBody struct {
	CreatedDateTime     string        `xml:"createdDateTime"`
	MainDocument        xmlDocument   `xml:"MainDocument"`
	AdditionalDocuments []xmlDocument `xml:"AdditionalDocument"`
	TechnicalDocuments  []xmlDocument `xml:"TechnicalDocument"`
}

type xmlDocument struct {
	ID    string `xml:"mainDocumentID"`
	Label string `xml:"label"`
	Files []struct {
		EncodingFormat string `xml:"encodingFormat"`
		Filename       string `xml:"filename"`
		Language       string `xml:"language"`
		Content        []byte `xml:"content"` // base64 text, as encoding/xml hands it over
	} `xml:"File"`
	Actions []struct {
		Label         string `xml:"label"`
		ActionCode    string `xml:"actionCode"`
		StartDateTime string `xml:"startDateTime"`
		EndDateTime   string `xml:"endDateTime"`
		Reservation   *struct {
			Description     string `xml:"description"`
			ReservationUUID string `xml:"reservationUUID"`
			Abstract        string `xml:"abstract"`
			Location        string `xml:"location"`
			StartDateTime   string `xml:"startDateTime"`
			EndDateTime     string `xml:"endDateTime"`
			OrganizerMail   string `xml:"organizerMail"`
			OrganizerName   string `xml:"organizerName"`
		} `xml:"Reservation"`
		EntryPoint *struct {
			URL string `xml:"url"`
		} `xml:"EntryPoint"`
	} `xml:"Action"`
}

type benchInput struct {
	name string
	data []byte
}

func benchInputs(b testing.TB) []benchInput {
	bom := []byte("\xef\xbb\xbf")
	in := []benchInput{
		{"Minimum", readSample(b, "v1.1_MeMo_Minimum_Example.xml")},
		{"Full", bytes.TrimPrefix(readSample(b, "v1.1_MeMo_Full_Example.xml"), bom)},
		{"NemSMS", readSample(b, "v1.1_MeMo_NemSMS.xml")},
	}
	for _, size := range []struct {
		name string
		n    int
	}{{"Attach1MB", 1 << 20}, {"Attach10MB", 10 << 20}} {
		g := NewGenerator(GenConfig{Seed: 5, Now: testNow, NemSMSShare: -1, AttachmentSize: SizeDist{Kind: SizeFixed, Bytes: size.n}})
		doc, _ := g.Next(nil)
		in = append(in, benchInput{size.name, doc})
	}
	return in
}

func BenchmarkParseValidate(b *testing.B) {
	opts := ValidateOptions{Now: clock(testNow)}
	for _, in := range benchInputs(b) {
		b.Run(in.name, func(b *testing.B) {
			p := NewParser()
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				m, err := p.Parse(in.data)
				if err != nil {
					b.Fatal(err)
				}
				errs := Validate(m, opts)
				if !errs.SchemaValid() {
					b.Fatal(errs)
				}
			}
		})
	}
}

func BenchmarkEncodingXML(b *testing.B) {
	for _, in := range benchInputs(b) {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var m xmlMessage
				if err := xml.Unmarshal(in.data, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	g := NewGenerator(GenConfig{Seed: 1, Now: testNow})
	buf := make([]byte, 0, 8192)
	var total int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, _ := g.Next(buf[:0])
		total += int64(len(out))
		buf = out
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/float64(b.N), "bytes/msg")
}

func BenchmarkSerialize(b *testing.B) {
	src := readSample(b, "v1.2_MeMo_Full_Example.xml")
	m, err := Parse(src)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = Serialize(buf[:0], m)
	}
}

// TestTimingRatio measures Parse+Validate against encoding/xml interleaved
// in rounds, so both see the same machine load, and reports the ratio of
// the best rounds (and of the medians). Opt-in: MEMOFLOW_TIMING=1.
func TestTimingRatio(t *testing.T) {
	if os.Getenv("MEMOFLOW_TIMING") == "" {
		t.Skip("set MEMOFLOW_TIMING=1 to measure the speed ratio against encoding/xml")
	}
	inputs := benchInputs(t)[:3]
	opts := ValidateOptions{Now: clock(testNow)}
	p := NewParser()
	const rounds, iters = 21, 300
	for _, in := range inputs {
		var ours, theirs []float64
		for r := 0; r < rounds; r++ {
			start := time.Now()
			for i := 0; i < iters; i++ {
				m, _ := p.Parse(in.data)
				Validate(m, opts)
			}
			ours = append(ours, float64(time.Since(start).Nanoseconds())/iters)
			start = time.Now()
			for i := 0; i < iters; i++ {
				var m xmlMessage
				_ = xml.Unmarshal(in.data, &m)
			}
			theirs = append(theirs, float64(time.Since(start).Nanoseconds())/iters)
		}
		slices.Sort(ours)
		slices.Sort(theirs)
		t.Logf("%-8s ours best %7.0f ns (median %7.0f)  encoding/xml best %7.0f ns (median %7.0f)  ratio best %.1fx, median %.1fx",
			in.name, ours[0], ours[rounds/2], theirs[0], theirs[rounds/2], theirs[0]/ours[0], theirs[rounds/2]/ours[rounds/2])
	}
}
