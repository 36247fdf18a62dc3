package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/registry"
)

// The demo's SFTP and SMTP recipient systems: in-process servers started
// with `memoflow run` (test keys kept under <var>/demo/transport-keys, so
// only the first start pays for the RSA keys), registered for the demo
// authority with a contact point each, so a demo letter to that contact
// point is delivered over the protocol. Their entries are rewritten when
// the servers' addresses change (they listen on free ports).
const (
	demoSFTP   = "demo-sftp"
	demoSMTP   = "demo-smtp"
	demoCPSFTP = "demo-cp-sftp"
	demoCPSMTP = "demo-cp-smtp"
)

// startDemoTransports starts the servers, points the deliver stage's
// --sftp-key-file / --smtp-* settings at the demo keys (only those left
// unset: a configured key is someone's real setup, and that protocol's
// demo system is then left out), and registers the systems.
func startDemoTransports(ctx context.Context, a *app, w *registry.Writer, view *registry.View) error {
	dc := &a.cfg.Deliver
	wantSFTP, wantSMTP := dc.SFTPKeyFile == "", dc.SMTPCertFile == "" && dc.SMTPKeyFile == ""
	if !wantSFTP && !wantSMTP {
		return nil
	}
	keys, err := recipientsim.LoadTransportKeys(filepath.Join(a.cfg.VarDir, "demo", "transport-keys"))
	if err != nil {
		return fmt.Errorf("demo transports: %w", err)
	}
	var es []registry.Entity
	if wantSFTP {
		r, err := recipientsim.StartSFTP(keys, filepath.Join(a.cfg.VarDir, "demo", "sftp"), "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("demo SFTP recipient: %w", err)
		}
		a.closers = append(a.closers, func() { _ = r.Close() })
		dc.SFTPKeyFile = keys.SSHKeyFile
		es = append(es, demoSFTPEntities(r.Endpoint(), r.HostKey())...)
		a.log.Info("demo SFTP recipient system", "system", demoSFTP, "contact_point", demoCPSFTP, "endpoint", r.Endpoint(),
			"inbox", filepath.Join(r.Root, "inbox"), "receipts", filepath.Join(r.Root, "receipts"))
	}
	if wantSMTP {
		r, err := recipientsim.StartSMTP(keys, "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("demo SMTP recipient: %w", err)
		}
		a.closers = append(a.closers, func() { _ = r.Close() })
		dc.SMTPCertFile, dc.SMTPKeyFile, dc.SMTPTLSCAFile = keys.FunctionCertFile, keys.FunctionKeyFile, r.TLSCAFile
		if dc.SMTPFrom == "" {
			dc.SMTPFrom = "digitalpost@memoflow.example"
		}
		es = append(es, demoSMTPEntities(r.Endpoint(), r.Address, r.CertificatePEM())...)
		a.log.Info("demo SMTP recipient system", "system", demoSMTP, "contact_point", demoCPSMTP, "endpoint", r.Endpoint())
	}
	// Only what changed is written: a restart with the same addresses
	// writes nothing.
	var changed []registry.Entity
	for _, e := range es {
		if s, ok := e.(*registry.System); ok {
			if old := view.System(s.ID); old != nil && *old == *s {
				continue
			}
		}
		if p, ok := e.(*registry.ContactPoint); ok && view.ContactPoint(p.ID) != nil {
			continue
		}
		changed = append(changed, e)
	}
	if len(changed) == 0 {
		return nil
	}
	if err := w.Put(ctx, demoActor, changed...); err != nil {
		return fmt.Errorf("demo transports: %w", err)
	}
	return nil
}

func demoSFTPEntities(endpoint, hostKey string) []registry.Entity {
	return []registry.Entity{
		&registry.System{ID: demoSFTP, Org: demoOrg, Name: "Demo arkiv (SFTP)", SysKind: registry.SystemRecipient, Role: registry.RoleRegular,
			Protocol: registry.SFTP, Endpoint: endpoint, SFTPUser: "memoflow", SSHHostKey: hostKey, Folder: "/inbox", ReceiptFolder: "/receipts",
			MemoVersion: 12, Contact: registry.Contact{Name: "Demo Drift", Email: "drift@demo.example"}},
		&registry.ContactPoint{ID: demoCPSFTP, ParentID: "demo-borgerservice", Org: demoOrg, Name: "Arkiv (SFTP)",
			Keywords: []string{"arkiv", "sftp"}, KLE: []string{"00.01"}, Visibility: registry.VisibleAll, System: demoSFTP},
	}
}

func demoSMTPEntities(endpoint, address, certPEM string) []registry.Entity {
	return []registry.Entity{
		&registry.System{ID: demoSMTP, Org: demoOrg, Name: "Demo sagssystem (SMTP)", SysKind: registry.SystemRecipient, Role: registry.RoleRegular,
			Protocol: registry.SMTP, Endpoint: endpoint, SMTPAddress: address, Certificate: certPEM,
			MemoVersion: 11, Contact: registry.Contact{Name: "Demo Drift", Email: "drift@demo.example"}},
		&registry.ContactPoint{ID: demoCPSMTP, ParentID: "demo-borgerservice", Org: demoOrg, Name: "Sager (SMTP)",
			Keywords: []string{"sager", "smtp"}, KLE: []string{"00.01"}, Visibility: registry.VisibleAll, System: demoSMTP},
	}
}
