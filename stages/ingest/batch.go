package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/ingest/archive"
)

// BatchReceipt answers a batch: the transmission id under which the
// per-message receipts follow (GET /apis/v1/receipts), and what ingest
// already knows.
type BatchReceipt struct {
	TransmissionID string         `json:"transmissionId"`
	ReceiptStatus  string         `json:"receiptStatus"`
	TimeStamp      string         `json:"timeStamp"`
	ErrorCode      string         `json:"errorCode,omitempty"`
	ErrorMessage   string         `json:"errorMessage,omitempty"`
	Accepted       int            `json:"accepted"`
	Rejected       int            `json:"rejected"`
	RejectedByCode map[string]int `json:"rejectedByCode,omitempty"`
	// Rejections names each message refused at once (up to maxRejections),
	// so a client can report per message without waiting for receipts.
	Rejections []Rejection `json:"rejections,omitempty"`
}

// Rejection is one message of a batch refused at once.
type Rejection struct {
	File         string `json:"file"`
	MessageUUID  string `json:"messageUUID,omitempty"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// maxRejections bounds the list in one answer; the counts stay exact.
const maxRejections = 10000

// submitBatch streams a tar(+LZMA) batch: each MeMo is checked like a
// single submission and produced as soon as it is read, so a 99.5 MB batch
// is never held whole. Messages already produced stay accepted when the
// archive turns out broken further on; the answer says how far it got.
func (a *API) submitBatch(w http.ResponseWriter, r *http.Request, p *auth.Principal, tid, mt string, params map[string]string) {
	br := &BatchReceipt{TransmissionID: tid, RejectedByCode: map[string]int{}}
	body := io.Reader(http.MaxBytesReader(w, r.Body, a.cfg.MaxShipmentBytes))
	compressed := true
	if mt == "multipart/form-data" {
		part, err := filePart(r, params)
		if err != nil {
			a.batchAnswer(w, br, reject(CodeContentType, "%v", err))
			return
		}
		defer part.Close()
		body = part
		compressed = part.Header.Get("Content-Type") != "application/x-tar"
	}
	ar := archive.NewReader(body, archive.Limits{MaxTotalBytes: a.cfg.MaxShipmentBytes}, compressed)

	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		kafkaErr error
	)
	seen := map[string]struct{}{}
	ctx := context.WithoutCancel(r.Context())
	for {
		e, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			wg.Wait()
			a.batchAnswer(w, br, archiveRejection(err))
			return
		}
		data, err := e.Bytes()
		if err != nil {
			wg.Wait()
			a.batchAnswer(w, br, archiveRejection(err))
			return
		}
		m, rj := a.check(data, p)
		uuid := ""
		if m != nil {
			uuid = m.Header.MessageUUID
		}
		if rj == nil {
			if !memo.IsUUID(uuid) {
				rj = reject(CodeUUIDInvalid, "entry %s: messageUUID %q is not a UUID", e.Name, uuid)
			} else if _, dup := seen[uuid]; dup {
				rj = reject(CodeDuplicateInBatch, "entry %s: messageUUID %s appears earlier in this batch", e.Name, uuid)
			}
		}
		if rj != nil {
			br.Rejected++
			br.RejectedByCode[rj.code]++
			if len(br.Rejections) < maxRejections {
				br.Rejections = append(br.Rejections, Rejection{File: e.Name, MessageUUID: uuid, ErrorCode: rj.code, ErrorMessage: rj.message})
			}
			a.emitReceipt(ctx, tid, uuid, p, rj)
			continue
		}
		rec, err := a.ingestRecord(ctx, tid, uuid, p, data, true)
		if err != nil {
			wg.Wait()
			w.Header().Set("Retry-After", "5")
			a.batchAnswer(w, br, reject(CodeBlobStore, "entry %s could not be stored: %v", e.Name, err))
			return
		}
		seen[uuid] = struct{}{}
		br.Accepted++
		wg.Add(1)
		a.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if kafkaErr == nil {
					kafkaErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if kafkaErr != nil {
		a.log.Warn("kafka did not acknowledge a batch", "err", kafkaErr, "transmissionId", tid)
		w.Header().Set("Retry-After", "5")
		a.batchAnswer(w, br, reject(CodeKafkaUnavailable, "Kafka did not acknowledge every message: %v; resend the batch (accepted messages are deduplicated by messageUUID)", kafkaErr))
		return
	}
	if br.Accepted+br.Rejected == 0 {
		a.batchAnswer(w, br, reject(string(archive.CodeEmpty), "the archive holds no MeMo file"))
		return
	}
	a.batchAnswer(w, br, nil)
}

func archiveRejection(err error) *rejection {
	var ae *archive.Error
	if errors.As(err, &ae) {
		return &rejection{status: ae.Status(), code: string(ae.Code), message: ae.Error()}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return reject(CodeTooLarge, "the batch is more than %d bytes", mbe.Limit)
	}
	return reject(CodeReadFailed, "reading the batch: %v", err)
}

// filePart finds the multipart part named "file" (NgDP's form field).
func filePart(r *http.Request, params map[string]string) (*multipart.Part, error) {
	if params["boundary"] == "" {
		return nil, errors.New("multipart/form-data without a boundary")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, errors.New("multipart/form-data without a part named file")
		}
		if err != nil {
			return nil, fmt.Errorf("multipart: %v", err)
		}
		if part.FormName() == "file" {
			return part, nil
		}
		part.Close()
	}
}

func (a *API) batchAnswer(w http.ResponseWriter, br *BatchReceipt, rj *rejection) {
	br.TimeStamp = records.TimeStampOf(a.now())
	br.ReceiptStatus = records.StatusReceived
	status := http.StatusCreated
	if rj != nil {
		br.ErrorCode, br.ErrorMessage = rj.code, rj.message
		br.ReceiptStatus = records.StatusInvalid
		status = rj.status
	}
	if len(br.RejectedByCode) == 0 {
		br.RejectedByCode = nil
	}
	writeJSON(w, status, br)
}
