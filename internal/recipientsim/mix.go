package recipientsim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/memoflow/memoflow/schemas/registry"
)

// Mix is a protocol mix of push-style recipient systems, in percent
// (rest=80,sftp=10,smtp=10): the bench's --protocol-mix.
type Mix struct{ REST, SFTP, SMTP int }

// ParseMix parses "rest=80,sftp=10,smtp=10" (the shares add up to 100;
// a protocol left out has 0).
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 0 || n > 100 {
			return Mix{}, fmt.Errorf("protocol mix %q: %q is not PROTOCOL=PERCENT", s, part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "rest":
			m.REST = n
		case "sftp":
			m.SFTP = n
		case "smtp":
			m.SMTP = n
		default:
			return Mix{}, fmt.Errorf("protocol mix %q: unknown protocol %q (rest, sftp, smtp)", s, k)
		}
	}
	if m.REST+m.SFTP+m.SMTP != 100 {
		return Mix{}, fmt.Errorf("protocol mix %q: shares add up to %d, not 100", s, m.REST+m.SFTP+m.SMTP)
	}
	return m, nil
}

func (m Mix) String() string { return fmt.Sprintf("rest=%d,sftp=%d,smtp=%d", m.REST, m.SFTP, m.SMTP) }

// Pick is the protocol of system id under the mix: by a hash of the id,
// so the same registry always gets the same mix.
func (m Mix) Pick(id string) registry.Protocol {
	h := fnv.New32a()
	h.Write([]byte(id))
	switch b := int(h.Sum32() % 100); {
	case b < m.SFTP:
		return registry.SFTP
	case b < m.SFTP+m.SMTP:
		return registry.SMTP
	}
	return registry.RestPush
}

// MixServers are the in-process SFTP and SMTP recipients a mix needs
// (nil where its share is 0), sharing one key directory. Point the
// deliver stage at them with the Keys' files and SMTP.TLSCAFile
// (--sftp-key-file, --smtp-cert-file, --smtp-key-file, --smtp-tls-ca-file).
type MixServers struct {
	Mix  Mix
	Keys *TransportKeys
	SFTP *SFTPRecipient
	SMTP *SMTPRecipient
}

// StartMix starts the servers m needs; keys live in keysDir, SFTP files
// under sftpRoot.
func StartMix(m Mix, keysDir, sftpRoot string) (*MixServers, error) {
	x := &MixServers{Mix: m}
	if m.SFTP == 0 && m.SMTP == 0 {
		return x, nil
	}
	var err error
	if x.Keys, err = LoadTransportKeys(keysDir); err != nil {
		return nil, err
	}
	if m.SFTP > 0 {
		if x.SFTP, err = StartSFTP(x.Keys, sftpRoot, ""); err != nil {
			return nil, err
		}
	}
	if m.SMTP > 0 {
		if x.SMTP, err = StartSMTP(x.Keys, ""); err != nil {
			x.Close()
			return nil, err
		}
	}
	return x, nil
}

// Apply moves a REST_PUSH recipient system to the protocol the mix picks
// for it, with the running server's entry; other systems stay as they are.
func (x *MixServers) Apply(s *registry.System) error {
	if s.SysKind != registry.SystemRecipient {
		return nil
	}
	return x.ApplyAny(s)
}

// ApplyAny is Apply for a push system of any kind: the bench's traffic goes
// mostly to mailbox providers, which it moves too, to load the transports.
func (x *MixServers) ApplyAny(s *registry.System) error {
	if s.Protocol != registry.RestPush {
		return nil
	}
	switch x.Mix.Pick(s.ID) {
	case registry.SFTP:
		if x.SFTP == nil {
			return errors.New("recipientsim: the mix picks SFTP but no SFTP server runs")
		}
		t := x.SFTP.Target(s.ID)
		s.Protocol, s.Endpoint, s.Credentials = registry.SFTP, x.SFTP.Endpoint(), ""
		s.SFTPUser, s.SSHHostKey, s.Folder, s.ReceiptFolder = t.User, t.HostKey, t.Folder, ""
	case registry.SMTP:
		if x.SMTP == nil {
			return errors.New("recipientsim: the mix picks SMTP but no SMTP server runs")
		}
		s.Protocol, s.Endpoint, s.Credentials = registry.SMTP, x.SMTP.Endpoint(), ""
		s.SMTPAddress, s.Certificate = x.SMTP.Address, x.SMTP.CertificatePEM()
	}
	return nil
}

// OnAccept calls fn for every message the SFTP or SMTP server accepts
// (system is "sftp" or "smtp": one server serves all systems of its
// protocol); nil removes it.
func (x *MixServers) OnAccept(fn func(system, uuid string)) {
	for name, srv := range map[string]interface{ OnAccept(func(string)) }{"sftp": x.sftpSrv(), "smtp": x.smtpSrv()} {
		if srv == nil {
			continue
		}
		if fn == nil {
			srv.OnAccept(nil)
			continue
		}
		srv.OnAccept(func(uuid string) { fn(name, uuid) })
	}
}

func (x *MixServers) sftpSrv() interface{ OnAccept(func(string)) } {
	if x.SFTP == nil {
		return nil
	}
	return x.SFTP.Server
}

func (x *MixServers) smtpSrv() interface{ OnAccept(func(string)) } {
	if x.SMTP == nil {
		return nil
	}
	return x.SMTP.Server
}

// Close stops the servers.
func (x *MixServers) Close() {
	if x.SFTP != nil {
		_ = x.SFTP.Close()
	}
	if x.SMTP != nil {
		_ = x.SMTP.Close()
	}
}
