package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/transport"

	memoschema "github.com/memoflow/memoflow/schemas/memo"
)

// Receipt files: the recipient system writes one business receipt per
// file into its ReceiptFolder, as records.Receipt JSON (NgDP's receipt
// shape: messageUUID, receiptStatus COMPLETED or FAILED, errorCode,
// errorMessage, timeStamp), named anything ending in .json. Files whose
// names start with "." are being written and are skipped; the system
// should write under a dot name and rename, as memoflow does.
//
// The seeds define no receipt XML for SFTP systems, so JSON is the one
// format.
const (
	receiptSuffix = ".json"
	doneDir       = "done"
	failedDir     = "failed"
)

// ReceiptHandler takes one parsed receipt. It must be idempotent: a crash
// between its return and the file's removal hands the same receipt again
// on the next poll. A *transport.Error with CodeReceiptFile from it means
// the receipt can never be used: the file goes to failed/ and is reported
// in Invalid, as one that does not parse; any other error leaves the file
// for the next poll. The receipts stage's deterministic receipt ids make
// relaying it to the sender idempotent.
type ReceiptHandler func(ctx context.Context, file string, r *records.Receipt) error

// PollResult counts one pass over the receipt folder.
type PollResult struct {
	Handled int // handed to the handler, which returned nil; removed (or moved to done/)
	Retried int // the handler failed; left in place for the next poll
	// Invalid receipt files, moved to failed/ so they are reported once;
	// each is a *transport.Error with CodeReceiptFile naming the file.
	Invalid []error
}

// maxReceiptsPerPoll bounds one pass, so one system with a backlog of
// receipts cannot hold a poller for long.
const maxReceiptsPerPoll = 1000

// PollReceipts makes one pass over t's ReceiptFolder: list, read, parse,
// hand each receipt to h, and delete it (or move it to done/) after h
// returns nil. A file that does not parse is moved to failed/ and listed
// in Invalid. The error is for the pass itself (connection, listing) or
// joins the handler's errors.
func (c *Client) PollReceipts(ctx context.Context, t *Target, h ReceiptHandler) (PollResult, error) {
	var res PollResult
	if t.ReceiptFolder == "" {
		return res, &transport.Error{Code: transport.CodeConfig, Outcome: transport.Permanent, Protocol: Proto,
			Err: &ConfigError{"receipt_folder", "the system has no receipt folder to poll"}}
	}
	var herrs []error
	err := c.do(ctx, t, func(x *conn) error {
		infos, err := x.sftp.ReadDir(t.ReceiptFolder)
		if err != nil {
			return classify(err, "list "+t.ReceiptFolder)
		}
		// Oldest first: receipts for one message keep their order.
		sort.Slice(infos, func(i, j int) bool {
			if !infos[i].ModTime().Equal(infos[j].ModTime()) {
				return infos[i].ModTime().Before(infos[j].ModTime())
			}
			return infos[i].Name() < infos[j].Name()
		})
		n := 0
		for _, fi := range infos {
			name := fi.Name()
			if !fi.Mode().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, receiptSuffix) {
				continue
			}
			if n++; n > maxReceiptsPerPoll || ctx.Err() != nil {
				break
			}
			file := path.Join(t.ReceiptFolder, name)
			r, perr := c.readReceipt(x, file, fi.Size())
			if errors.Is(perr, os.ErrNotExist) {
				continue // another poller (a second replica) took it
			}
			if perr != nil {
				var te *transport.Error
				if errors.As(perr, &te) && te.Code != transport.CodeReceiptFile {
					return perr // the connection or the server failed, not the file
				}
				if err := moveAside(x, t.ReceiptFolder, failedDir, name); err != nil {
					if errors.Is(err, os.ErrNotExist) {
						continue
					}
					return err
				}
				res.Invalid = append(res.Invalid, perr)
				continue
			}
			if err := h(ctx, file, r); err != nil {
				var te *transport.Error
				if errors.As(err, &te) && te.Code == transport.CodeReceiptFile {
					// The handler found the receipt unusable (a message
					// the system never got, a status it may not give):
					// set aside like a file that does not parse.
					if merr := moveAside(x, t.ReceiptFolder, failedDir, name); merr != nil {
						if errors.Is(merr, os.ErrNotExist) {
							continue
						}
						return merr
					}
					res.Invalid = append(res.Invalid, err)
					continue
				}
				res.Retried++
				herrs = append(herrs, fmt.Errorf("receipt %s: %w", file, err))
				continue
			}
			if c.cfg.KeepReceipts {
				err = moveAside(x, t.ReceiptFolder, doneDir, name)
			} else if err = x.sftp.Remove(file); err != nil {
				err = classify(err, "remove "+file)
			}
			// Gone already: another poller handled it too; the handler
			// is idempotent, so that is no error.
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			res.Handled++
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, errors.Join(herrs...)
}

func (c *Client) readReceipt(x *conn, file string, size int64) (*records.Receipt, error) {
	bad := func(format string, args ...any) error {
		return transport.Permanentf(Proto, transport.CodeReceiptFile, "%s: "+format, append([]any{file}, args...)...)
	}
	if size > c.cfg.MaxReceiptBytes {
		return nil, bad("%d bytes, more than the %d a receipt may have", size, c.cfg.MaxReceiptBytes)
	}
	f, err := x.sftp.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, classify(err, "open "+file)
	}
	b, err := io.ReadAll(io.LimitReader(f, c.cfg.MaxReceiptBytes+1))
	_ = f.Close()
	if err != nil {
		return nil, classify(err, "read "+file)
	}
	if int64(len(b)) > c.cfg.MaxReceiptBytes {
		return nil, bad("more than %d bytes", c.cfg.MaxReceiptBytes)
	}
	var r records.Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, bad("not receipt JSON (%v)", err)
	}
	if !memoschema.IsUUID(r.MessageUUID) {
		return nil, bad("messageUUID %q is not a UUID", r.MessageUUID)
	}
	switch r.ReceiptStatus {
	case records.StatusCompleted, records.StatusFailed:
	default:
		return nil, bad("receiptStatus %q: a business receipt is COMPLETED or FAILED", r.ReceiptStatus)
	}
	if r.ReceiptStatus == records.StatusFailed && r.ErrorCode == "" {
		return nil, bad("a FAILED receipt needs an errorCode")
	}
	if r.TimeStamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, r.TimeStamp); err != nil {
			return nil, bad("timeStamp %q is not an RFC 3339 time", r.TimeStamp)
		}
	}
	if r.Kind == "" {
		r.Kind = records.KindBusiness
	}
	return &r, nil
}

// moveAside renames folder/name to folder/sub/name, creating sub; if a
// file of that name is already there, a suffix keeps both.
func moveAside(x *conn, folder, sub, name string) error {
	dir := path.Join(folder, sub)
	if err := x.sftp.Mkdir(dir); err != nil {
		if _, serr := x.sftp.Stat(dir); serr != nil {
			return classify(err, "mkdir "+dir)
		}
	}
	from, to := path.Join(folder, name), path.Join(dir, name)
	if _, err := x.sftp.Stat(to); err == nil {
		to = path.Join(dir, fmt.Sprintf("%s.%d", name, time.Now().UnixNano()))
	} else if !errors.Is(err, os.ErrNotExist) {
		return classify(err, "stat "+to)
	}
	if err := x.sftp.Rename(from, to); err != nil {
		if _, serr := x.sftp.Stat(from); errors.Is(serr, os.ErrNotExist) {
			return serr
		}
		return classify(err, "move "+from+" to "+to)
	}
	return nil
}

// RunReceipts polls every interval until ctx ends. onErr sees each pass's
// error and each invalid file (for events and logs); nil ignores them.
func (c *Client) RunReceipts(ctx context.Context, t *Target, every time.Duration, h ReceiptHandler, onErr func(error)) error {
	if every <= 0 {
		return &ConfigError{"receipt_poll_interval", "give a positive interval such as 30s"}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		res, err := c.PollReceipts(ctx, t, h)
		if onErr != nil {
			for _, e := range res.Invalid {
				onErr(e)
			}
			if err != nil {
				onErr(err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
