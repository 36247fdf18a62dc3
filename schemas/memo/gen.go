package memo

import (
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// UUID is a 16-byte UUID.
type UUID [16]byte

const hexDigits = "0123456789abcdef"

// AppendText appends the hyphenated lower-case form.
func (u UUID) AppendText(b []byte) []byte {
	for i, c := range u {
		switch i {
		case 4, 6, 8, 10:
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

func (u UUID) String() string {
	var b [36]byte
	return string(u.AppendText(b[:0]))
}

// SizeKind is the shape of an attachment-size distribution.
type SizeKind uint8

const (
	SizeNone      SizeKind = iota // a short letter text only (about 100 bytes)
	SizeFixed                     // every main document is Bytes long
	SizeLogNormal                 // lognormal with median Bytes and shape Sigma, capped at Max
)

// SizeDist is the distribution of a message's main-document size in bytes
// (before base64). The zero value is SizeNone.
type SizeDist struct {
	Kind  SizeKind
	Bytes int     // fixed size, or the median for SizeLogNormal
	Sigma float64 // SizeLogNormal shape (0: 1.0)
	Max   int     // SizeLogNormal cap (0: 20 MiB)
}

// ParseSizeDist reads "none", "fixed:64KiB", "lognormal:200KiB" or
// "lognormal:200KiB,sigma=1.2,max=10MiB" (units B, KB, KiB, MB, MiB).
func ParseSizeDist(s string) (SizeDist, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return SizeDist{}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return SizeDist{}, errors.New(`attachment size: want "none", "fixed:SIZE" or "lognormal:MEDIAN[,sigma=S][,max=SIZE]"`)
	}
	parts := strings.Split(rest, ",")
	n, err := parseBytes(parts[0])
	if err != nil {
		return SizeDist{}, err
	}
	var d SizeDist
	switch kind {
	case "fixed":
		d = SizeDist{Kind: SizeFixed, Bytes: n}
	case "lognormal":
		d = SizeDist{Kind: SizeLogNormal, Bytes: n}
	default:
		return SizeDist{}, errors.New("attachment size: unknown distribution " + strconv.Quote(kind))
	}
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "sigma":
			if d.Sigma, err = strconv.ParseFloat(v, 64); err != nil || d.Sigma <= 0 {
				return SizeDist{}, errors.New("attachment size: bad sigma " + strconv.Quote(v))
			}
		case "max":
			if d.Max, err = parseBytes(v); err != nil {
				return SizeDist{}, err
			}
		default:
			return SizeDist{}, errors.New("attachment size: unknown option " + strconv.Quote(k))
		}
	}
	return d, nil
}

func parseBytes(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, errors.New("attachment size: bad size " + strconv.Quote(s))
	}
	return n * mult, nil
}

// Authority is a recipient authority: its CVR and the contact points post
// may be addressed to.
type Authority struct {
	CVR           string
	ContactPoints []string
}

// GenConfig configures a Generator. Shares are probabilities in [0,1];
// 0 means the default given, a negative value means never.
type GenConfig struct {
	Seed uint64
	Now  time.Time // the generator's clock: createdDateTime and value dates (zero: time.Now())

	SenderCVRs  []string    // sending authorities (default: 5 synthetic CVRs)
	CitizenCPRs []string    // citizen recipients (default: 1000 synthetic CPRs)
	CompanyCVRs []string    // company recipients (default: 200 synthetic CVRs)
	Authorities []Authority // authority recipients with contact points (default: 20 synthetic)

	CitizenShare   float64 // recipient mix, normalized (defaults 0.75 / 0.15 / 0.10)
	CompanyShare   float64
	AuthorityShare float64

	V12Share       float64 // MeMo 1.2 rather than 1.1 (default 0.5)
	NemSMSShare    float64 // NEMSMS rather than DIGITALPOST (default 0.1; citizens only)
	ActionShare    float64 // main document carries actions (default 0.3)
	ValueDateShare float64 // has doNotDeliverUntilDate 0..5 days ahead (default 0.2)
	RichShare      float64 // optional header data: ContentData, AttentionData, ReplyData, ... (default 0.3)

	AttachmentSize SizeDist // main document size (default SizeNone)
	ExtraFiles     int      // at most this many additional documents (default 0)
}

func share(v, def float64) float64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// Generator writes realistic MeMo messages, deterministically for a seed and
// a Now. Every message is XSD-valid for its version and passes the business
// rules as of Now. It is not safe for concurrent use.
type Generator struct {
	cfg GenConfig
	rnd *rand.Rand

	senders, cprs, cvrs []string
	auths               []Authority
	pCitizen, pCompany  float64
	v12, sms, act, vd   float64
	rich                float64

	created  string    // createdDateTime base
	now      time.Time // cfg.Now in UTC
	valDates [6]string // today .. today+5 in Europe/Copenhagen
	seq      uint64
	raw      []byte // attachment bytes before base64
}

var senderNames = []string{"Aarhus Kommune", "Skattestyrelsen", "Udbetaling Danmark", "Region Hovedstaden", "Styrelsen for Arbejdsmarked og Rekruttering", "Københavns Kommune", "Færdselsstyrelsen"}

var labels = []string{
	"Afgørelse om boligstøtte", "Indkaldelse til samtale", "Årsopgørelse", "Opkrævning af ejendomsskat",
	"Bekræftelse af din ansøgning", "Svar på din henvendelse", "Påmindelse om tandlægebesøg",
	"Kvittering for indberetning", "Vigtig information om din pension", "Ændring af din sag &amp; dine oplysninger",
	"Tilbud om børnehaveplads", "Periodisk syn af køretøj", "Varsel om partshøring",
}

var notifications = []string{
	"Du har fået digital post fra din kommune.", "Husk din tid hos tandlægen i morgen kl. 10.",
	"Din pakke med medicin er klar til afhentning.", "Du har en ny besked om din sag. Læs den i Digital Post.",
	"Påmindelse: svarfristen udløber om 3 dage.",
}

var companyNames = []string{"Vognmand Hansen ApS", "Tusindfryd A/S", "Bageriet I/S", "Nordisk Byg &amp; Anlæg A/S", "Kaffebaren ApS"}

var personNames = []string{"Mette Hansen", "Jens Jensen", "Emilie Nielsen", "Søren Østergaard", "Anne-Marie Æbelø"}

// NewGenerator returns a generator for cfg.
func NewGenerator(cfg GenConfig) *Generator {
	g := &Generator{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	g.now = cfg.Now.UTC()
	g.created = string(appendDateTime(nil, g.now))
	local := cfg.Now.In(Copenhagen())
	for i := range g.valDates {
		d := time.Date(local.Year(), local.Month(), local.Day()+i, 12, 0, 0, 0, time.UTC)
		g.valDates[i] = d.Format("2006-01-02")
	}
	seedRnd := rand.New(rand.NewPCG(cfg.Seed^0xabcdef, 42))
	g.senders = cfg.SenderCVRs
	if len(g.senders) == 0 {
		g.senders = []string{"12345678", "29189919", "19435075", "29190623", "55133018"}
	}
	g.cprs = cfg.CitizenCPRs
	if len(g.cprs) == 0 {
		g.cprs = make([]string, 1000)
		for i := range g.cprs {
			b := make([]byte, 0, 10)
			b = append2(b, 1+seedRnd.IntN(28))
			b = append2(b, 1+seedRnd.IntN(12))
			b = append2(b, seedRnd.IntN(100))
			b = append2(b, seedRnd.IntN(100))
			b = append2(b, seedRnd.IntN(100))
			g.cprs[i] = string(b)
		}
	}
	g.cvrs = cfg.CompanyCVRs
	if len(g.cvrs) == 0 {
		g.cvrs = make([]string, 200)
		for i := range g.cvrs {
			g.cvrs[i] = strconv.Itoa(10000000 + seedRnd.IntN(89999999))
		}
	}
	g.auths = cfg.Authorities
	if len(g.auths) == 0 {
		g.auths = make([]Authority, 20)
		for i := range g.auths {
			a := Authority{CVR: strconv.Itoa(20000000 + seedRnd.IntN(79999999))}
			for k := 0; k < 3; k++ {
				var u UUID
				fillUUID(seedRnd, &u)
				a.ContactPoints = append(a.ContactPoints, u.String())
			}
			g.auths[i] = a
		}
	}
	c, co, a := share(cfg.CitizenShare, 0.75), share(cfg.CompanyShare, 0.15), share(cfg.AuthorityShare, 0.10)
	if len(g.auths) == 0 || len(g.auths[0].ContactPoints) == 0 {
		a = 0
	}
	if sum := c + co + a; sum > 0 {
		g.pCitizen, g.pCompany = c/sum, (c+co)/sum
	} else {
		g.pCitizen, g.pCompany = 1, 1
	}
	g.v12 = share(cfg.V12Share, 0.5)
	g.sms = share(cfg.NemSMSShare, 0.1)
	g.act = share(cfg.ActionShare, 0.3)
	g.vd = share(cfg.ValueDateShare, 0.2)
	g.rich = share(cfg.RichShare, 0.3)
	return g
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10%10), byte('0'+n%10)) }

func fillUUID(r *rand.Rand, u *UUID) {
	a, b := r.Uint64(), r.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
}

func appendDateTime(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = strconv.AppendInt(b, int64(y), 10)
	b = append(b, '-')
	b = append2(b, int(mo))
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, h)
	b = append(b, ':')
	b = append2(b, mi)
	b = append(b, ':')
	b = append2(b, s)
	return append(b, 'Z')
}

func (g *Generator) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

func (g *Generator) chance(p float64) bool { return p > 0 && g.rnd.Float64() < p }

// el appends <memo:name>value</memo:name> (value already escaped).
func el(b []byte, name, value string) []byte {
	b = append(b, "<memo:"...)
	b = append(b, name...)
	b = append(b, '>')
	b = append(b, value...)
	b = append(b, "</memo:"...)
	b = append(b, name...)
	return append(b, '>')
}

func elNS(b []byte, prefix, name, value string) []byte {
	b = append(b, '<')
	b = append(b, prefix...)
	b = append(b, ':')
	b = append(b, name...)
	b = append(b, '>')
	b = append(b, value...)
	b = append(b, "</"...)
	b = append(b, prefix...)
	b = append(b, ':')
	b = append(b, name...)
	return append(b, '>')
}

func (g *Generator) uuid(b []byte) ([]byte, UUID) {
	var u UUID
	fillUUID(g.rnd, &u)
	return u.AppendText(b), u
}

// Next appends one message to buf and returns it with its messageUUID.
func (g *Generator) Next(buf []byte) ([]byte, UUID) {
	g.seq++
	v12 := g.chance(g.v12)
	r := g.rnd.Float64()
	kind := 2 // authority
	switch {
	case r < g.pCitizen:
		kind = 0
	case r < g.pCompany:
		kind = 1
	}
	nemsms := kind == 0 && g.chance(g.sms)
	rich := g.chance(g.rich)

	b := append(buf, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"...)
	b = append(b, `<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1"`...)
	if rich {
		b = append(b, ` xmlns:grd="https://data.gov.dk/model/core/" xmlns:kle="http://kle-online.dk/"`...)
	}
	if v12 {
		b = append(b, ` memoVersion="1.2">`...)
	} else {
		b = append(b, ` memoVersion="1.1" memoSchVersion="1.1.0">`...)
	}
	b = append(b, "<memo:MessageHeader><memo:messageType>"...)
	if nemsms {
		b = append(b, "NEMSMS"...)
	} else {
		b = append(b, "DIGITALPOST"...)
	}
	b = append(b, "</memo:messageType><memo:messageUUID>"...)
	var id UUID
	b, id = g.uuid(b)
	b = append(b, "</memo:messageUUID><memo:messageID>MF-"...)
	b = strconv.AppendUint(b, g.cfg.Seed, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, g.seq, 10)
	b = append(b, "</memo:messageID>"...)
	label := g.pick(labels)
	b = el(b, "label", label)
	if nemsms || g.chance(0.5) {
		b = el(b, "notification", g.pick(notifications))
	}
	reply := !nemsms && g.chance(0.2)
	if reply {
		b = el(b, "reply", "true")
		b = append(b, "<memo:replyByDateTime>"...)
		b = appendDateTime(b, g.now.Add(time.Duration(14+g.rnd.IntN(30))*24*time.Hour))
		b = append(b, "</memo:replyByDateTime>"...)
	}
	if g.chance(g.vd) {
		b = el(b, "doNotDeliverUntilDate", g.valDates[g.rnd.IntN(len(g.valDates))])
	}
	if !v12 || g.chance(0.5) {
		mandatory, legal := "false", "false"
		if !nemsms && g.chance(0.1) {
			mandatory = "true"
		}
		if !nemsms && g.chance(0.05) {
			legal = "true"
		}
		b = el(b, "mandatory", mandatory)
		b = el(b, "legalNotification", legal)
	}
	var recipient string
	var authority Authority
	switch kind {
	case 0:
		recipient = g.pick(g.cprs)
	case 1:
		recipient = g.pick(g.cvrs)
		if g.chance(0.3) {
			b = el(b, "postType", "VIRKSOMHEDSPOST")
		}
	default:
		authority = g.auths[g.rnd.IntN(len(g.auths))]
		recipient = authority.CVR
		b = el(b, "postType", "MYNDIGHEDSPOST")
	}

	si := g.rnd.IntN(len(g.senders))
	b = append(b, "<memo:Sender>"...)
	b = el(b, "senderID", g.senders[si])
	b = el(b, "idType", "CVR")
	b = el(b, "label", senderNames[si%len(senderNames)])
	if rich {
		b = append(b, "<memo:AttentionData><memo:AttentionPerson><memo:label>"...)
		b = append(b, g.pick(personNames)...)
		b = append(b, "</memo:label></memo:AttentionPerson><memo:ContentResponsible><memo:label>Borgerservice</memo:label></memo:ContentResponsible></memo:AttentionData>"...)
	}
	if reply || rich {
		b = append(b, "<memo:ContactPoint><memo:contactPointID>"...)
		b, _ = g.uuid(b)
		b = append(b, "</memo:contactPointID><memo:label>Borgerservice</memo:label></memo:ContactPoint>"...)
	}
	if v12 && g.chance(0.2) {
		b = append(b, "<memo:Representative><memo:representativeID>"...)
		b = append(b, g.pick(g.senders)...)
		b = append(b, "</memo:representativeID><memo:idType>CVR</memo:idType><memo:label>Fælles Servicecenter</memo:label></memo:Representative>"...)
	}
	b = append(b, "</memo:Sender><memo:Recipient>"...)
	b = el(b, "recipientID", recipient)
	if kind == 0 {
		b = el(b, "idType", "CPR")
		if rich {
			b = el(b, "label", g.pick(personNames))
		}
	} else {
		b = el(b, "idType", "CVR")
		if kind == 1 {
			b = el(b, "label", g.pick(companyNames))
		}
	}
	if kind == 2 {
		b = append(b, "<memo:ContactPoint><memo:contactPointID>"...)
		b = append(b, authority.ContactPoints[g.rnd.IntN(len(authority.ContactPoints))]...)
		b = append(b, "</memo:contactPointID></memo:ContactPoint>"...)
	}
	b = append(b, "</memo:Recipient>"...)
	if rich {
		b = append(b, "<memo:ContentData>"...)
		if kind == 0 {
			b = append(b, "<grd:CPRdata>"...)
			b = elNS(b, "grd", "cprNumber", recipient)
			b = append(b, "</grd:CPRdata>"...)
		} else {
			b = append(b, "<grd:CVRdata>"...)
			b = elNS(b, "grd", "cvrNumber", recipient)
			b = append(b, "</grd:CVRdata>"...)
		}
		b = append(b, "<memo:CaseID><memo:caseID>SAG-"...)
		b = strconv.AppendInt(b, int64(g.rnd.IntN(1_000_000)), 10)
		b = append(b, "</memo:caseID><memo:caseSystem>ESDH</memo:caseSystem></memo:CaseID><kle:KLEdata><kle:subjectKey>27.24.00</kle:subjectKey><kle:version>2.12</kle:version><kle:label>Boligstøtte</kle:label></kle:KLEdata></memo:ContentData>"...)
		if v12 && g.chance(0.1) {
			b = append(b, "<memo:ForwardData><memo:messageUUID>"...)
			b, _ = g.uuid(b)
			b = append(b, "</memo:messageUUID><memo:originalMessageDateTime>"...)
			b = appendDateTime(b, g.now.Add(-time.Duration(1+g.rnd.IntN(90))*24*time.Hour))
			b = append(b, "</memo:originalMessageDateTime><memo:originalSender>"...)
			b = append(b, g.pick(senderNames)...)
			b = append(b, "</memo:originalSender><memo:originalRepresentative>Fælles Servicecenter</memo:originalRepresentative></memo:ForwardData>"...)
		}
		if g.chance(0.3) {
			b = append(b, "<memo:ReplyData><memo:messageUUID>"...)
			b, _ = g.uuid(b)
			b = append(b, "</memo:messageUUID><memo:comment>Svar på din henvendelse</memo:comment><memo:AdditionalReplyData><memo:label>Journalnummer</memo:label><memo:value>J-"...)
			b = strconv.AppendInt(b, int64(g.rnd.IntN(100000)), 10)
			b = append(b, "</memo:value></memo:AdditionalReplyData></memo:ReplyData>"...)
		}
	}
	b = append(b, "</memo:MessageHeader>"...)

	if !nemsms {
		b = append(b, "<memo:MessageBody><memo:createdDateTime>"...)
		b = append(b, g.created...)
		b = append(b, "</memo:createdDateTime><memo:MainDocument><memo:label>"...)
		b = append(b, label...)
		b = append(b, "</memo:label>"...)
		b = g.file(b, g.mainSize())
		if g.chance(g.act) {
			b = g.action(b)
		}
		b = append(b, "</memo:MainDocument>"...)
		if g.cfg.ExtraFiles > 0 {
			for n := g.rnd.IntN(g.cfg.ExtraFiles + 1); n > 0; n-- {
				b = append(b, "<memo:AdditionalDocument><memo:label>Bilag</memo:label>"...)
				b = g.file(b, g.mainSize()/4)
				b = append(b, "</memo:AdditionalDocument>"...)
			}
		}
		b = append(b, "</memo:MessageBody>"...)
	}
	b = append(b, "</memo:Message>\n"...)
	return b, id
}

func (g *Generator) mainSize() int {
	d := g.cfg.AttachmentSize
	switch d.Kind {
	case SizeFixed:
		return d.Bytes
	case SizeLogNormal:
		sigma := d.Sigma
		if sigma <= 0 {
			sigma = 1
		}
		max := d.Max
		if max <= 0 {
			max = 20 << 20
		}
		n := int(float64(d.Bytes) * math.Exp(sigma*g.rnd.NormFloat64()))
		if n > max {
			n = max
		}
		if n < 1 {
			n = 1
		}
		return n
	}
	return -1
}

var fileTypes = []struct{ mime, ext string }{
	{"application/pdf", ".pdf"}, {"application/pdf", ".pdf"}, {"application/pdf", ".pdf"},
	{"text/plain", ".txt"}, {"text/html", ".html"},
}

// file appends a File of n random bytes (n < 0: a short letter text).
func (g *Generator) file(b []byte, n int) []byte {
	ft := fileTypes[g.rnd.IntN(len(fileTypes))]
	if n < 0 {
		ft = fileTypes[3]
	}
	b = append(b, "<memo:File><memo:encodingFormat>"...)
	b = append(b, ft.mime...)
	b = append(b, "</memo:encodingFormat><memo:filename>Brev-"...)
	b = strconv.AppendUint(b, g.seq, 10)
	b = append(b, ft.ext...)
	b = append(b, "</memo:filename><memo:language>da</memo:language><memo:content>"...)
	if n < 0 {
		text := letterTexts[g.rnd.IntN(len(letterTexts))]
		b = base64.StdEncoding.AppendEncode(b, text)
	} else {
		if cap(g.raw) < n {
			g.raw = make([]byte, n)
		}
		raw := g.raw[:n]
		for i := 0; i < n; i += 8 {
			x := g.rnd.Uint64()
			for k := 0; k < 8 && i+k < n; k++ {
				raw[i+k] = byte(x >> (8 * k))
			}
		}
		b = base64.StdEncoding.AppendEncode(b, raw)
	}
	return append(b, "</memo:content></memo:File>"...)
}

var letterTexts = [][]byte{
	[]byte("Kære modtager. Vi har behandlet din ansøgning og vedlægger afgørelsen. Med venlig hilsen"),
	[]byte("Du indkaldes hermed til samtale. Mød venligst op på adressen nedenfor."),
	[]byte("Hermed kvittering for din indberetning. Du skal ikke foretage dig mere."),
}

func (g *Generator) action(b []byte) []byte {
	b = append(b, "<memo:Action>"...)
	switch g.rnd.IntN(3) {
	case 0:
		b = append(b, "<memo:label>Book en tid</memo:label><memo:actionCode>AFTALE</memo:actionCode><memo:Reservation><memo:description>Samtale</memo:description><memo:reservationUUID>"...)
		b, _ = g.uuid(b)
		start := g.now.Add(time.Duration(24+g.rnd.IntN(24*20)) * time.Hour).Truncate(time.Hour)
		b = append(b, "</memo:reservationUUID><memo:abstract>Samtale om din sag</memo:abstract><memo:location>Rådhuset, lokale 2</memo:location><memo:startDateTime>"...)
		b = appendDateTime(b, start)
		b = append(b, "</memo:startDateTime><memo:endDateTime>"...)
		b = appendDateTime(b, start.Add(time.Hour))
		b = append(b, "</memo:endDateTime></memo:Reservation>"...)
	case 1:
		b = append(b, "<memo:label>Betal her</memo:label><memo:actionCode>BETALING</memo:actionCode><memo:EntryPoint><memo:url>https://betaling.example.dk/faktura?id="...)
		b = strconv.AppendUint(b, g.seq, 10)
		b = append(b, "&amp;k=1</memo:url></memo:EntryPoint>"...)
	default:
		b = append(b, "<memo:label>Se din sag</memo:label><memo:actionCode>SELVBETJENING</memo:actionCode><memo:EntryPoint><memo:url>https://selvbetjening.example.dk/sag/"...)
		b = strconv.AppendUint(b, g.seq, 10)
		b = append(b, "</memo:url></memo:EntryPoint>"...)
	}
	return append(b, "</memo:Action>"...)
}
