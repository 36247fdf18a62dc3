package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

func TestClassify(t *testing.T) {
	perm := Permanentf("SFTP", CodeHostKeyMismatch, "pinned %s", "x")
	trans := Transientf("SMTP", CodeSMTPTransient, "busy")
	tests := []struct {
		name    string
		err     error
		outcome Outcome
		code    string
	}{
		{"nil", nil, Delivered, ""},
		{"permanent", perm, Permanent, CodeHostKeyMismatch},
		{"transient", trans, Transient, CodeSMTPTransient},
		{"wrapped permanent", fmt.Errorf("system s1: %w", perm), Permanent, CodeHostKeyMismatch},
		{"deadline", context.DeadlineExceeded, Transient, CodeTimeout},
		{"unclassified", io.ErrUnexpectedEOF, Transient, CodeConnect},
		{"net error", NetError("SFTP", &net.OpError{Op: "dial", Err: errors.New("refused")}), Transient, CodeConnect},
		{"net timeout", NetError("SFTP", fmt.Errorf("dial: %w", context.DeadlineExceeded)), Transient, CodeTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.outcome {
				t.Fatalf("Classify = %s, want %s", got, tc.outcome)
			}
			if got := CodeOf(tc.err); got != tc.code {
				t.Fatalf("CodeOf = %q, want %q", got, tc.code)
			}
			if tc.err == nil {
				return
			}
			var te *Error
			if !errors.As(tc.err, &te) {
				return
			}
			if errors.Is(tc.err, ErrPermanent) != (tc.outcome == Permanent) || errors.Is(tc.err, ErrTransient) != (tc.outcome == Transient) {
				t.Fatalf("errors.Is disagrees with the outcome for %v", tc.err)
			}
		})
	}
	if s := perm.Error(); s != "SFTP DELIVER_SFTP_HOST_KEY_MISMATCH (permanent): pinned x" {
		t.Fatalf("message %q", s)
	}
	e := &Error{Code: CodeSMTPRejected, Outcome: Permanent, Protocol: "SMTP", Reply: 550, Err: errors.New("no such user")}
	if s := e.Error(); s != "SMTP DELIVER_SMTP_REJECTED (permanent, reply 550): no such user" {
		t.Fatalf("message %q", s)
	}
}

// Codes are part of the event log's contract: unique, and the two shared
// with the REST push keep their strings.
func TestCodesStable(t *testing.T) {
	all := []string{CodeConnect, CodeTimeout, CodeConfig, CodeAuthRejected, CodeBadMessage, CodeReceiptFile,
		CodeRemoteFailure, CodeHostKeyMismatch, CodePermissionDenied, CodeFolderMissing, CodeStorageFull,
		CodeFileTooLarge, CodeFileConflict, CodeUnsupported, CodeSMTPTransient, CodeSMTPRejected,
		CodeStartTLSMissing, CodeTLSVerify, CodeCertExpired, CodeCertInvalid, CodeSMIME}
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c] {
			t.Fatalf("duplicate code %s", c)
		}
		seen[c] = true
	}
	if CodeConnect != "DELIVER_CONNECT_FAILED" || CodeTimeout != "DELIVER_TIMEOUT" {
		t.Fatal("the codes shared with the REST push changed")
	}
}
