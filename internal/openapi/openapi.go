// Package openapi holds the OpenAPI 3 description of every HTTP endpoint
// memoflow serves (openapi.json beside this file, embedded) and serves it
// at GET /openapi.json. docs/openapi.json is a copy that a test keeps
// identical; edit the file here.
//
// The tests in cmd/memoflow check it against the real muxes: every route a
// memoflow process registers must be described, every described operation
// must be routed, example answers of the real handlers must validate
// against the schemas, and the error-code enums must equal the Go code
// tables. So a new endpoint is described by adding its path and operation
// to openapi.json, and nothing else.
package openapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
)

// Document is the OpenAPI 3 document (JSON).
//
//go:embed openapi.json
var Document []byte

// Path is where every memoflow HTTP server serves Document.
const Path = "/openapi.json"

var etag = func() string {
	sum := sha256.Sum256(Document)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// Handler serves Document. It needs no authentication: the document
// describes the endpoints, not data.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(Document)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(Document)
		}
	})
}
