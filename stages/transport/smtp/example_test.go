package smtp_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// A recipient simulator (memoflow sim recipient --protocol smtp) runs a
// Server with the system's certificate and trusts memoflow's; the
// registry holds the system's certificate for encryption.
func ExampleServer() {
	now := time.Now()
	memoflowID, _ := smtp.GenerateIdentity("memoflow FOCES", now.Add(-time.Hour), now.Add(time.Hour), nil)
	systemID, _ := smtp.GenerateIdentity("sim system", now.Add(-time.Hour), now.Add(time.Hour), nil)
	trusted := x509.NewCertPool()
	trusted.AddCert(memoflowID.Cert)

	srv, err := smtp.NewServer(smtp.ServerConfig{Recipient: systemID, Trusted: trusted})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	cl, _ := smtp.New(smtp.Config{Identity: memoflowID, From: "noreply@memoflow.test", TLSRoots: srv.TLSRoots()})
	defer cl.Close()
	target := &smtp.Target{SystemID: "sys-sim", Addr: srv.Addr(), To: "post@sim.test", CertPEM: systemID.CertPEM()}
	const uuid = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ab"
	err = cl.Deliver(context.Background(), target, uuid, []byte("<memo:Message/>"))
	fmt.Println(transport.Classify(err), srv.Count(uuid), string(srv.Memo(uuid)))
	// Output:
	// delivered 1 <memo:Message/>
}
