package sftp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/sftp"
)

// A recipient simulator (memoflow sim recipient --protocol sftp) runs a
// Server with memoflow's public key; delivery pins the server's host key.
func ExampleServer() {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	root, _ := os.MkdirTemp("", "sim-sftp")
	defer os.RemoveAll(root)

	srv, err := sftp.NewServer(sftp.ServerConfig{Root: root, AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	cl, _ := sftp.New(sftp.Config{Signer: signer})
	defer cl.Close()
	target := srv.Target("sys-sim") // Addr, User, HostKey (pinned), /inbox, /receipts
	const uuid = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ab"
	err = cl.Deliver(context.Background(), target, uuid, []byte("<memo:Message/>"))
	fmt.Println(transport.Classify(err), srv.Count(uuid))

	target.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0qW3ZbP6cVLmO4JKaEwV9qWZbd4cH2W5lJX7yGm5n"
	err = cl.Deliver(context.Background(), target, uuid, []byte("<memo:Message/>"))
	fmt.Println(transport.Classify(err), transport.CodeOf(err))
	// Output:
	// delivered 1
	// permanent DELIVER_SFTP_HOST_KEY_MISMATCH
}
