package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/sftp"
)

// CodeReceiptFileInvalid is the errorCode of the event for an SFTP receipt
// file that cannot be used (does not parse, names a message the system
// never got, gives a status it may not give). The file is moved to the
// receipt folder's failed/ and reported once.
const CodeReceiptFileInvalid = transport.CodeReceiptFile

// ReceiptFolder is an SFTP system whose receipt folder is polled, and the
// systems whose messages its receipts may answer: itself, or for a
// supplier's standard system the systems that selected it.
type ReceiptFolder struct {
	System System
	Owners []string
}

// ReceiptFolders lists the SFTP receipt folders to poll (RegistrySystems
// over the registry; StaticReceiptFolders in tests).
type ReceiptFolders interface {
	ReceiptFolders() []ReceiptFolder
}

// StaticReceiptFolders is a fixed list.
type StaticReceiptFolders []ReceiptFolder

func (s StaticReceiptFolders) ReceiptFolders() []ReceiptFolder { return s }

// ReceiptPoller runs one sftp RunReceipts loop per SFTP system with a
// receipt folder, started and stopped as the registry changes, and relays
// each receipt file through the pull API's receipt path (RelayReceipt):
// the outbox marker the deliver stage wrote at delivery names the sender.
//
// It runs in the pull-api stage, beside the outbox index. Two replicas
// polling one folder are safe: a file one of them removed is skipped by
// the other, a receipt already relayed answers 409 and counts as done,
// and a receipt relayed by both at once (each before seeing the other's
// outbox write) has the same deterministic receipt id, which the receipts
// stage stores once; only its BUSINESS_RECEIPT_RECEIVED_BY_RECIPIENT_SYSTEM
// event can then appear twice. Turn polling off on all replicas but one
// (--sftp-receipt-poll 0) to rule that out.
type ReceiptPoller struct {
	api     *PullAPI
	client  *sftp.Client
	folders ReceiptFolders
	every   time.Duration
	// grace: a receipt for a message not in the outbox index is retried
	// this long (the marker may still be on its way through the tailer),
	// then set aside as invalid.
	grace time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	running map[string]*polling
	unknown map[string]time.Time // system/file → first seen without a message
	wg      sync.WaitGroup
}

type polling struct {
	fp     string
	owners atomic.Pointer[[]string]
	cancel context.CancelFunc
}

// NewReceiptPoller returns a poller over the folders, polling each every
// interval.
func NewReceiptPoller(api *PullAPI, client *sftp.Client, folders ReceiptFolders, every time.Duration) (*ReceiptPoller, error) {
	switch {
	case api == nil || client == nil || folders == nil:
		return nil, errors.New("deliver: the receipt poller needs the pull API, an SFTP client (--sftp-key-file) and the registry")
	case every <= 0:
		return nil, fmt.Errorf("deliver.sftp_receipt_poll: %v: give a positive interval such as 30s", every)
	}
	return &ReceiptPoller{api: api, client: client, folders: folders, every: every, grace: 10 * time.Minute,
		log: api.log, running: map[string]*polling{}, unknown: map[string]time.Time{}}, nil
}

// Run reconciles the running loops with the registry every interval
// until ctx ends, then stops them all.
func (p *ReceiptPoller) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		p.Reconcile(ctx)
		select {
		case <-ctx.Done():
			p.stopAll()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Reconcile starts a loop for every folder not yet polled, restarts one
// whose entry changed (address, user, host key, folder) and stops those
// no longer listed.
func (p *ReceiptPoller) Reconcile(ctx context.Context) {
	want := map[string]ReceiptFolder{}
	for _, f := range p.folders.ReceiptFolders() {
		want[f.System.ID] = f
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, r := range p.running {
		f, ok := want[id]
		if !ok || r.fp != folderFingerprint(&f.System) {
			r.cancel()
			delete(p.running, id)
		}
	}
	for id, f := range want {
		if r := p.running[id]; r != nil {
			owners := f.Owners
			r.owners.Store(&owners)
			continue
		}
		t := SFTPTarget(&f.System)
		if err := t.Validate(); err != nil {
			p.log.Warn("SFTP receipt folder not polled: unusable registry entry", "system", id, "err", err)
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		r := &polling{fp: folderFingerprint(&f.System), cancel: cancel}
		owners := f.Owners
		r.owners.Store(&owners)
		p.running[id] = r
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = p.client.RunReceipts(lctx, t, p.every, p.handler(id, r), func(err error) { p.onErr(lctx, id, err) })
		}()
	}
}

func folderFingerprint(s *System) string {
	return s.Endpoint + "\x00" + s.SFTPUser + "\x00" + s.SSHHostKey + "\x00" + s.ReceiptFolder
}

func (p *ReceiptPoller) stopAll() {
	p.mu.Lock()
	for id, r := range p.running {
		r.cancel()
		delete(p.running, id)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Polling returns the ids of the systems whose folders are polled.
func (p *ReceiptPoller) Polling() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.running))
	for id := range p.running {
		out = append(out, id)
	}
	return out
}

// handler relays one receipt file of system id to the sender through the
// outbox entry of whichever owner got the message.
func (p *ReceiptPoller) handler(id string, r *polling) sftp.ReceiptHandler {
	return func(ctx context.Context, file string, rc *records.Receipt) error {
		key := id + "/" + file
		for _, owner := range *r.owners.Load() {
			_, err := p.api.RelayReceipt(ctx, owner, rc.MessageUUID, rc)
			var ae *auth.Error
			switch {
			case err == nil:
				p.forget(key)
				p.api.metrics.receiptFiles.WithLabelValues("relayed").Inc()
				return nil
			case errors.As(err, &ae) && ae.Code == CodePullNotFound:
				continue
			case errors.As(err, &ae) && ae.Code == CodeReceiptTwice:
				// Relayed before (a repeat, or another replica): done.
				p.forget(key)
				p.api.metrics.receiptFiles.WithLabelValues("duplicate").Inc()
				return nil
			case errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity:
				p.forget(key)
				return transport.Permanentf(sftp.Proto, transport.CodeReceiptFile, "%s: %s", file, ae.Message)
			default:
				p.api.metrics.receiptFiles.WithLabelValues("retry").Inc()
				return err
			}
		}
		if first := p.firstUnknown(key); p.api.now().Sub(first) > p.grace {
			p.forget(key)
			return transport.Permanentf(sftp.Proto, transport.CodeReceiptFile,
				"%s: no message %s was delivered to %s (for %v)", file, rc.MessageUUID, id, p.grace)
		}
		p.api.metrics.receiptFiles.WithLabelValues("retry").Inc()
		return fmt.Errorf("message %s not in the outbox index of %s yet", rc.MessageUUID, id)
	}
}

func (p *ReceiptPoller) firstUnknown(key string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.unknown[key]
	if !ok {
		t = p.api.now()
		p.unknown[key] = t
	}
	return t
}

func (p *ReceiptPoller) forget(key string) {
	p.mu.Lock()
	delete(p.unknown, key)
	p.mu.Unlock()
}

// onErr reports a pass's error (logged) and each invalid receipt file (an
// event with DELIVER_RECEIPT_FILE_INVALID naming the system, so the
// system's operator can be told from the event log).
func (p *ReceiptPoller) onErr(ctx context.Context, id string, err error) {
	var te *transport.Error
	if !errors.As(err, &te) || te.Code != transport.CodeReceiptFile {
		if ctx.Err() == nil {
			p.log.Warn("SFTP receipt poll", "system", id, "err", err)
		}
		return
	}
	p.api.metrics.receiptFiles.WithLabelValues("invalid").Inc()
	p.log.Warn("SFTP receipt file invalid; moved to failed/", "system", id, "err", err)
	ev := events.Event{Time: p.api.now(), Tag: events.BusinessReceiptReceivedByRecipientSys, RecipientSystem: id,
		ErrorCode: CodeReceiptFileInvalid, ReceiptStatus: records.StatusInvalid}
	res := p.api.prod.ProduceSync(ctx, events.NewRecord(pipeline.TopicEvents, ev))
	if err := res.FirstErr(); err != nil && ctx.Err() == nil {
		p.log.Warn("event for an invalid SFTP receipt file not written", "system", id, "err", err)
	}
}
