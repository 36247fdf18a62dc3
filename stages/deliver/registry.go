package deliver

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/memoflow/memoflow/schemas/registry"
)

// RegistrySystems is Systems over the registry view (memo.registry tailed
// into memory by schemas/registry).
type RegistrySystems struct {
	View *registry.View
	// Secrets resolves credential references; nil uses EnvSecrets.
	Secrets func(ref string) string
}

// System answers from the registry as delivery sees it
// (registry.View.Effective): a selection of a supplier's standard system
// is delivered by the template's protocol, endpoint, keys and version
// under the selecting system's id, contact and deactivation. A selection
// whose template is gone is not found (DELIVER_UNKNOWN_SYSTEM, retried on
// the schedule while the registry is fixed).
func (r *RegistrySystems) System(id string) (System, bool) {
	s := r.View.Effective(r.View.System(id))
	if s == nil {
		return System{}, false
	}
	return r.convert(s), true
}

func (r *RegistrySystems) convert(s *registry.System) System {
	resolve := r.Secrets
	if resolve == nil {
		resolve = EnvSecrets
	}
	cert := s.Certificate
	if strings.HasPrefix(cert, "secret:") || strings.HasPrefix(cert, "file:") {
		// A reference: the PEM lives in the secret store. Unresolvable,
		// it is empty and the message fails with DELIVER_TRANSPORT_CONFIG.
		cert = resolve(cert)
	}
	return System{
		ID: s.ID, Org: s.Org, Protocol: Protocol(s.Protocol), Endpoint: s.Endpoint,
		Credential: resolve(s.Credentials), WantVersion: s.MemoVersion, Active: !s.Deactivated,
		Kind: kindOf(s.SysKind), Contact: s.Contact.Email,
		SFTPUser: s.SFTPUser, SSHHostKey: s.SSHHostKey, Folder: s.Folder, ReceiptFolder: s.ReceiptFolder,
		SMTPAddress: s.SMTPAddress, Certificate: cert, Template: s.Template,
	}
}

// ReceiptFolders implements ReceiptFolders over the registry: every SFTP
// system with a receipt folder, a supplier's standard system with the
// systems that selected it (a standard system nobody selected is not
// polled: none of its receipts could be relayed).
func (r *RegistrySystems) ReceiptFolders() []ReceiptFolder {
	var out []ReceiptFolder
	r.View.Each(registry.KindSystem, "", func(e registry.Entity) bool {
		s, ok := e.(*registry.System)
		if !ok || s.Protocol != registry.SFTP || s.ReceiptFolder == "" {
			return true
		}
		f := ReceiptFolder{System: r.convert(s), Owners: []string{s.ID}}
		if s.SysKind == registry.SystemStandard {
			if f.Owners = r.View.Selections(s.ID); len(f.Owners) == 0 {
				return true
			}
		}
		out = append(out, f)
		return true
	})
	return out
}

func kindOf(k registry.SystemKind) Kind {
	switch k {
	case registry.SystemMailbox:
		return KindMailbox
	case registry.SystemSMS:
		return KindSMS
	case registry.SystemPrint:
		return KindPrint
	}
	return KindRecipient
}

var fileSecrets sync.Map // path → string

// EnvSecrets resolves the registry's credential references: secret:NAME is
// the environment variable MEMOFLOW_SECRET_NAME (upper case, '-' and '.'
// as '_'), file:PATH the trimmed content of the file (read once).
// sha256: references are pull tokens the system presents, not something
// memoflow sends, and resolve to nothing.
func EnvSecrets(ref string) string {
	switch {
	case strings.HasPrefix(ref, "secret:"):
		name := strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(ref[len("secret:"):]))
		return os.Getenv("MEMOFLOW_SECRET_" + name)
	case strings.HasPrefix(ref, "file:"):
		p := ref[len("file:"):]
		if v, ok := fileSecrets.Load(p); ok {
			return v.(string)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		v := strings.TrimSpace(string(b))
		fileSecrets.Store(p, v)
		return v
	}
	return ""
}

// RegistryDeactivator deactivates systems through the registry writer
// (which validates the change and logs SYSTEM_CHANGED as an admin action
// of actor "memoflow-deliver").
type RegistryDeactivator struct {
	View   *registry.View
	Writer *registry.Writer
}

func (r *RegistryDeactivator) DeactivateSystem(ctx context.Context, id, _ string, _ time.Time) error {
	s := r.View.System(id)
	if s == nil || s.Deactivated {
		return nil
	}
	c := *s
	c.Deactivated = true
	return r.Writer.Put(ctx, "memoflow-deliver", &c)
}
