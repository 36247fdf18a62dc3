package pipeline

import (
	"errors"
	"fmt"
)

// Class says what the runtime does with an error from a stage.
type Class uint8

const (
	// ClassTransient: retry the same batch after a capped exponential backoff;
	// nothing is committed meanwhile.
	ClassTransient Class = iota + 1
	// ClassPoison: the record can never be processed; it goes to the DLQ with
	// headers and the stage goes on.
	ClassPoison
	// ClassFatal: configuration or programming error; the stage stops loudly.
	ClassFatal
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPoison:
		return "poison"
	case ClassFatal:
		return "fatal"
	}
	return "unknown"
}

// Error is a classified stage error. Match it with errors.As.
type Error struct {
	Class Class
	Code  string // stable, e.g. "MEMO_PARSE_NOT_WELL_FORMED"
	Err   error
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s %s: %v", e.Class, e.Code, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Transient marks err as retryable.
func Transient(err error) error { return &Error{Class: ClassTransient, Err: err} }

// Poison marks err as a property of the record: retrying cannot help.
func Poison(code string, err error) error { return &Error{Class: ClassPoison, Code: code, Err: err} }

// Fatal marks err as a reason to stop the stage.
func Fatal(err error) error { return &Error{Class: ClassFatal, Err: err} }

// ClassOf returns the class of err. Unclassified errors are transient: the
// safe default is to retry rather than to drop or to stop.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassTransient
}

// CodeOf returns the stable code of err, or "UNCLASSIFIED".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return "UNCLASSIFIED"
}
