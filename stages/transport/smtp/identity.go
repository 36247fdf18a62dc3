package smtp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Identity is an X.509 certificate with its private key: memoflow's
// function certificate (FOCES/VOCES) that signs, or a recipient system's
// certificate that messages are encrypted to.
type Identity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // intermediates, sent with the signature
	Key   crypto.Signer
}

// LoadIdentity reads a PEM certificate file (the certificate first, then
// any intermediates) and a PEM private key file (PKCS#8, PKCS#1 or SEC 1)
// and checks that they belong together. A FOCES/VOCES .p12 is converted
// once with openssl (see DESIGN.md).
func LoadIdentity(certFile, keyFile string) (*Identity, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, &ConfigError{"cert_file", fmt.Sprintf("cannot read %s: %v", certFile, err)}
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, &ConfigError{"key_file", fmt.Sprintf("cannot read %s: %v", keyFile, err)}
	}
	return ParseIdentity(cb, kb)
}

// ParseIdentity parses PEM certificate(s) and a PEM private key.
func ParseIdentity(certPEM, keyPEM []byte) (*Identity, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, &ConfigError{"cert_file", err.Error()}
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, &ConfigError{"key_file", "no PEM block: give the private key in PEM (PKCS#8, PKCS#1 or SEC 1)"}
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(kb.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
				return nil, &ConfigError{"key_file", "not a PKCS#8, PKCS#1 or SEC 1 private key (an encrypted key must be decrypted into the secret store)"}
			}
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, &ConfigError{"key_file", fmt.Sprintf("%T cannot sign", key)}
	}
	id := &Identity{Cert: certs[0], Chain: certs[1:], Key: signer}
	if !samePublicKey(id.Cert.PublicKey, signer.Public()) {
		return nil, &ConfigError{"key_file", "the private key does not belong to the certificate (wrong file, or a renewed certificate with the old key)"}
	}
	return id, nil
}

// ParseCerts parses one or more PEM CERTIFICATE blocks.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// CertPEM returns the certificate (and chain) in PEM.
func (id *Identity) CertPEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Cert.Raw})
	for _, c := range id.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM returns the private key in PKCS#8 PEM.
func (id *Identity) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// GenerateIdentity makes an RSA-2048 certificate for tests, the simulator
// and benchmarks: self-signed when issuer is nil, else issued by it (a
// test CA standing in for the OCES CA). Not for production: production
// certificates come from the OCES CA.
func GenerateIdentity(cn string, notBefore, notAfter time.Time, issuer *Identity) (*Identity, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return generate(cn, key, notBefore, notAfter, issuer)
}

// GenerateECIdentity is GenerateIdentity with a P-256 key (which cannot
// receive PKCS#7 encrypted mail: tests use it for the unusable case).
func GenerateECIdentity(cn string, notBefore, notAfter time.Time, issuer *Identity) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return generate(cn, key, notBefore, notAfter, issuer)
}

func generate(cn string, key crypto.Signer, notBefore, notAfter time.Time, issuer *Identity) (*Identity, error) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"memoflow test"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	parent, signer := tpl, key
	var chain []*x509.Certificate
	if issuer == nil {
		tpl.IsCA, tpl.BasicConstraintsValid = true, true
		tpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		parent, signer = issuer.Cert, issuer.Key
		chain = append([]*x509.Certificate{}, issuer.Chain...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{Cert: c, Chain: chain, Key: key}, nil
}
