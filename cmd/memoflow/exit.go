package main

import "fmt"

// exitError carries a process exit code up to main, which prints err (one
// line) and exits with code. Commands return it instead of calling os.Exit
// so deferred cleanup runs and tests can call commands directly.
//
// Codes: 1 = the work failed (e.g. an invalid message, a failed run),
// 2 = usage or configuration error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage/configuration error (exit code 2).
func usageErr(err error) error { return &exitError{code: 2, err: err} }
