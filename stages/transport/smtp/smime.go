package smtp

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/smallstep/pkcs7"

	"github.com/memoflow/memoflow/stages/transport"
)

// Content encryption: AES-256-CBC, what S/MIME 3.2/4.0 receivers all
// read (pkcs7 puts AES-GCM into EnvelopedData, not the AuthEnvelopedData
// S/MIME 4.0 specifies, so GCM would not interoperate). Integrity comes
// from the signature inside the envelope. The library takes the choice as
// a package variable; it is set once here, before any goroutine runs, and
// never changed.
func init() {
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES256CBC
}

// HeaderMessageUUID is on the outer (clear) header, so a receiving system
// can drop a repeat before decrypting.
const HeaderMessageUUID = "X-Memo-Message-UUID"

// checkValidity returns CodeCertExpired for a certificate outside its
// validity at now.
func checkValidity(who string, c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return transport.Permanentf(Proto, transport.CodeCertExpired, "%s certificate %q is not valid before %s",
			who, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return transport.Permanentf(Proto, transport.CodeCertExpired, "%s certificate %q expired at %s",
			who, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkRecipient: the system's certificate must be valid now, hold an RSA
// key (PKCS#7 key transport), allow key encipherment, and chain to
// RecipientRoots when those are set.
func (c *Client) checkRecipient(t *Target, cert *x509.Certificate, now time.Time) error {
	if err := checkValidity("system "+t.SystemID, cert, now); err != nil {
		return err
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return transport.Permanentf(Proto, transport.CodeCertInvalid,
			"system %s certificate has a %T key; S/MIME encryption needs RSA", t.SystemID, cert.PublicKey)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return transport.Permanentf(Proto, transport.CodeCertInvalid,
			"system %s certificate does not allow key encipherment", t.SystemID)
	}
	if c.cfg.RecipientRoots != nil {
		_, err := cert.Verify(x509.VerifyOptions{Roots: c.cfg.RecipientRoots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return transport.Permanentf(Proto, transport.CodeCertInvalid,
				"system %s certificate does not chain to the OCES roots: %v", t.SystemID, err)
		}
	}
	return nil
}

// compose builds the e-mail: headers in clear (no personal data: the
// subject is the messageUUID), the body an S/MIME enveloped-data whose
// plaintext is an S/MIME signed-data whose content is the MeMo as an
// application/xml attachment. Sign, then encrypt: the signature is hidden
// and covers the MeMo.
func (c *Client) compose(t *Target, cert *x509.Certificate, uuid string, memo []byte, now time.Time) ([]byte, error) {
	fail := func(step string, err error) error {
		return transport.Permanentf(Proto, transport.CodeSMIME, "%s for %s: %v", step, uuid, err)
	}
	var inner bytes.Buffer
	var h message.Header
	h.SetContentType("application/xml", map[string]string{"name": uuid + ".xml"})
	h.SetContentDisposition("attachment", map[string]string{"filename": uuid + ".xml"})
	h.Set("Content-Transfer-Encoding", "base64")
	if err := writeEntity(&inner, h, memo); err != nil {
		return nil, fail("mime", err)
	}

	sd, err := pkcs7.NewSignedData(inner.Bytes())
	if err != nil {
		return nil, fail("sign", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	id := c.id
	if err := sd.AddSignerChain(id.Cert, id.Key, id.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fail("sign", err)
	}
	signed, err := sd.Finish()
	if err != nil {
		return nil, fail("sign", err)
	}
	var signedEntity bytes.Buffer
	h = message.Header{}
	h.SetContentType("application/pkcs7-mime", map[string]string{"smime-type": "signed-data", "name": "smime.p7m"})
	h.SetContentDisposition("attachment", map[string]string{"filename": "smime.p7m"})
	h.Set("Content-Transfer-Encoding", "base64")
	if err := writeEntity(&signedEntity, h, signed); err != nil {
		return nil, fail("mime", err)
	}

	enveloped, err := pkcs7.Encrypt(signedEntity.Bytes(), []*x509.Certificate{cert})
	if err != nil {
		return nil, fail("encrypt", err)
	}

	var mh mail.Header
	mh.SetAddressList("From", []*mail.Address{{Address: c.cfg.From}})
	mh.SetAddressList("To", []*mail.Address{{Address: t.To}})
	mh.SetSubject("MeMo " + uuid)
	mh.SetDate(now)
	// The same Message-ID on every attempt: a receiver that got the mail
	// before our connection broke recognises the repeat.
	mh.SetMessageID(uuid + "@" + domainOf(c.cfg.From))
	mh.Set(HeaderMessageUUID, uuid)
	mh.Set("MIME-Version", "1.0")
	mh.SetContentType("application/pkcs7-mime", map[string]string{"smime-type": "enveloped-data", "name": "smime.p7m"})
	mh.SetContentDisposition("attachment", map[string]string{"filename": "smime.p7m"})
	mh.Set("Content-Transfer-Encoding", "base64")
	var out bytes.Buffer
	out.Grow(len(enveloped)*4/3 + 1024)
	if err := writeEntity(&out, mh.Header, enveloped); err != nil {
		return nil, fail("mime", err)
	}
	return out.Bytes(), nil
}

// writeEntity writes header and body; go-message encodes the body by its
// Content-Transfer-Encoding (base64 in 76-column CRLF lines).
func writeEntity(buf *bytes.Buffer, h message.Header, body []byte) error {
	w, err := message.CreateWriter(buf, h)
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Close()
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// Opened is a message a receiver decrypted and verified.
type Opened struct {
	UUID   string
	Memo   []byte
	Signer *x509.Certificate
}

// OpenError says which step of opening failed; Step is "mime",
// "decrypt" or "verify".
type OpenError struct {
	Step string
	Err  error
}

func (e *OpenError) Error() string { return "smime " + e.Step + ": " + e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Open is the receiving side of compose: decrypt with the system's
// certificate and key, verify the signature against trusted (memoflow's
// certificate or its CA) at now, and return the MeMo. The test server
// and the simulator use it; a recipient system written in Go could too.
func Open(raw []byte, recipient *Identity, trusted *x509.CertPool, now time.Time) (*Opened, error) {
	outer, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, &OpenError{"mime", err}
	}
	uuid := outer.Header.Get(HeaderMessageUUID)
	env, err := smimeBody(outer, "enveloped-data")
	if err != nil {
		return nil, &OpenError{"mime", err}
	}
	p7, err := pkcs7.Parse(env)
	if err != nil {
		return nil, &OpenError{"decrypt", err}
	}
	plain, err := p7.Decrypt(recipient.Cert, recipient.Key)
	if err != nil {
		return nil, &OpenError{"decrypt", err}
	}
	signedEntity, err := message.Read(bytes.NewReader(plain))
	if err != nil {
		return nil, &OpenError{"mime", err}
	}
	sig, err := smimeBody(signedEntity, "signed-data")
	if err != nil {
		return nil, &OpenError{"mime", err}
	}
	sp7, err := pkcs7.Parse(sig)
	if err != nil {
		return nil, &OpenError{"verify", err}
	}
	if err := sp7.VerifyWithChainAtTime(trusted, now); err != nil {
		return nil, &OpenError{"verify", err}
	}
	att, err := message.Read(bytes.NewReader(sp7.Content))
	if err != nil {
		return nil, &OpenError{"mime", err}
	}
	if ct, _, _ := att.Header.ContentType(); ct != "application/xml" {
		return nil, &OpenError{"mime", fmt.Errorf("attachment is %q, want application/xml", ct)}
	}
	_, params, _ := att.Header.ContentDisposition()
	if params["filename"] != uuid+".xml" {
		return nil, &OpenError{"mime", fmt.Errorf("attachment %q does not match %s %q", params["filename"], HeaderMessageUUID, uuid)}
	}
	var memo bytes.Buffer
	if _, err := memo.ReadFrom(att.Body); err != nil {
		return nil, &OpenError{"mime", err}
	}
	return &Opened{UUID: uuid, Memo: memo.Bytes(), Signer: sp7.GetOnlySigner()}, nil
}

func smimeBody(e *message.Entity, smimeType string) ([]byte, error) {
	ct, params, err := e.Header.ContentType()
	if err != nil {
		return nil, err
	}
	if (ct != "application/pkcs7-mime" && ct != "application/x-pkcs7-mime") || params["smime-type"] != smimeType {
		return nil, fmt.Errorf("content type %s smime-type=%q, want application/pkcs7-mime smime-type=%s", ct, params["smime-type"], smimeType)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(e.Body); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
