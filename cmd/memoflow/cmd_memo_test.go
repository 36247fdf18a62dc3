package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/sendclient"
)

func TestGenAndValidateCommands(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "msgs")
	if code, _, errs := runCLI(t, "gen", "--messages", "20", "--seed", "3", "--out", out); code != 0 {
		t.Fatalf("gen: exit %d %s", code, errs)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.xml"))
	if len(files) != 20 {
		t.Fatalf("gen wrote %d files, want 20", len(files))
	}
	// Every generated message is valid.
	if code, _, errs := runCLI(t, append([]string{"validate"}, files...)...); code != 0 {
		t.Fatalf("validate of generated messages: exit %d %s", code, errs)
	}
	// An invalid one makes the exit status 1, with its code in --json.
	bad := filepath.Join(dir, "bad.xml")
	b, _ := os.ReadFile(files[0])
	os.WriteFile(bad, []byte(strings.Replace(string(b), "<memo:messageUUID>", "<memo:messageUUID>x", 1)), 0o644)
	code, stdout, _ := runCLI(t, "validate", "--json", files[1], bad)
	if code != 1 {
		t.Fatalf("validate with an invalid file: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per file, got %q", stdout)
	}
	var res struct {
		File   string `json:"file"`
		Valid  bool   `json:"valid"`
		Errors []struct {
			Code string `json:"code"`
			Path string `json:"path"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil || res.Valid || len(res.Errors) == 0 || res.Errors[0].Code == "" || res.Errors[0].Path == "" {
		t.Fatalf("invalid file result %q (%v)", lines[1], err)
	}
	// Usage errors exit 2.
	if code, _, _ := runCLI(t, "validate"); code != 2 {
		t.Fatalf("validate without files: exit %d, want 2", code)
	}
	// A tar.lzma from gen is read back by the client's archive source.
	lz := filepath.Join(dir, "b.tar.lzma")
	if code, _, errs := runCLI(t, "gen", "--messages", "50", "--out", lz); code != 0 {
		t.Fatalf("gen lzma: exit %d %s", code, errs)
	}
	src, err := sendclient.NewArchiveSource(lz)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := src.Next(); err != nil {
			break
		}
		n++
	}
	if n != 50 {
		t.Fatalf("read %d messages back from the tar.lzma, want 50", n)
	}
}
