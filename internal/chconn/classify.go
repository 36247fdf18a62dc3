package chconn

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/memoflow/memoflow/pipeline"
)

// retryableCodes are the ClickHouse exception codes worth retrying with the
// same data: the list the official ClickHouse Kafka Connect sink retries
// (its docs' troubleshooting section). Every other server exception is a
// property of the statement or the setup (unknown table or column, syntax,
// type mismatch, authentication, memory limit) and retrying cannot help.
var retryableCodes = map[int32]string{
	3:    "UNEXPECTED_END_OF_FILE",
	159:  "TIMEOUT_EXCEEDED",
	164:  "READONLY",
	202:  "TOO_MANY_SIMULTANEOUS_QUERIES",
	203:  "NO_FREE_CONNECTION",
	209:  "SOCKET_TIMEOUT",
	210:  "NETWORK_ERROR",
	242:  "TABLE_IS_READ_ONLY",
	252:  "TOO_MANY_PARTS",
	285:  "TOO_FEW_LIVE_REPLICAS",
	319:  "UNKNOWN_STATUS_OF_INSERT",
	425:  "SYSTEM_ERROR",
	999:  "KEEPER_EXCEPTION",
	1002: "UNKNOWN_EXCEPTION",
}

// Authentication failures: fatal, and Open does not wait them out.
func isAuthCode(code int32) bool {
	switch code {
	case 192, // UNKNOWN_USER
		193, // WRONG_PASSWORD
		194, // REQUIRED_PASSWORD
		195, // IP_ADDRESS_NOT_ALLOWED
		516: // AUTHENTICATION_FAILED
		return true
	}
	return false
}

// ExceptionCode returns the server exception code in err's chain.
func ExceptionCode(err error) (int32, bool) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code, true
	}
	return 0, false
}

// IsRetryable reports whether doing the same thing again may succeed: a
// retryable server exception, a network error, a timeout, an EOF, or a
// connection pool that had no connection for us.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := ExceptionCode(err); ok {
		_, retry := retryableCodes[code]
		return retry
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout), errors.Is(err, clickhouse.ErrConnectionClosed),
		errors.Is(err, ErrUnreachable),
		errors.As(err, &netErr):
		return true
	}
	return false
}

// isClientBug reports errors the driver raises before anything reaches the
// server because the Go side is wrong: bad values, misuse of a batch.
func isClientBug(err error) bool {
	var opErr *clickhouse.OpError
	return errors.As(err, &opErr) ||
		errors.Is(err, clickhouse.ErrBatchInvalid) ||
		errors.Is(err, clickhouse.ErrBatchAlreadySent) ||
		errors.Is(err, clickhouse.ErrBindMixedParamsFormats) ||
		errors.Is(err, ErrInvalidConfig)
}

// Classify wraps err in the pipeline class the runtime acts on:
// Transient (retry the same batch) for IsRetryable errors, Fatal (stop the
// stage) for any other server exception and for client-side misuse.
// Anything else stays Transient: the pipeline's rule is that retrying is
// the safe default, never dropping. The code is "CLICKHOUSE_<n>" for a
// server exception, "CLICKHOUSE_NETWORK" or "CLICKHOUSE_CLIENT" otherwise.
// An error that already carries a class is returned as it is; nil stays nil.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pipeline.Error
	if errors.As(err, &pe) {
		return err
	}
	code, isEx := ExceptionCode(err)
	switch {
	case IsRetryable(err):
		c := "CLICKHOUSE_NETWORK"
		if isEx {
			c = "CLICKHOUSE_" + strconv.Itoa(int(code))
		}
		return &pipeline.Error{Class: pipeline.ClassTransient, Code: c, Err: err}
	case isEx:
		return &pipeline.Error{Class: pipeline.ClassFatal, Code: "CLICKHOUSE_" + strconv.Itoa(int(code)), Err: err}
	case isClientBug(err):
		return &pipeline.Error{Class: pipeline.ClassFatal, Code: "CLICKHOUSE_CLIENT", Err: err}
	}
	return &pipeline.Error{Class: pipeline.ClassTransient, Code: "CLICKHOUSE_UNKNOWN", Err: err}
}
