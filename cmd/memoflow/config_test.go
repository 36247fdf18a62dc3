package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run executes the CLI in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		// Same mapping as execute().
		code = 1
		if ee, ok := err.(*exitError); ok {
			code = ee.code
		} else if isUsage(err) {
			code = 2
		}
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "m.yaml")
	os.WriteFile(file, []byte("http:\n  addr: 127.0.0.1:1111\nrunner:\n  poll_records: 7\n  sink_batch_records: 9\nlog:\n  level: warn\n"), 0o644)
	t.Setenv("MEMOFLOW_POLL_RECORDS", "8")
	t.Setenv("MEMOFLOW_SINK_BATCH_RECORDS", "10")
	code, out, errs := runCLI(t, "config", "--config", file, "--sink-batch-records", "11")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"addr: 127.0.0.1:1111",   // file over default
		"poll_records: 8",        // env over file
		"sink_batch_records: 11", // flag over env
		"level: warn",            // file
	} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
}

func TestBadInputOneClearLine(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badKey, []byte("kafka:\n  brokerz: x:1\n"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"unknown flag", []string{"run", "--no-such-flag"}, nil, 2, "unknown flag: --no-such-flag"},
		{"unknown config key", []string{"config", "--config", badKey}, nil, 2, "field brokerz not found"},
		{"missing config file", []string{"config", "--config", filepath.Join(dir, "nope.yaml")}, nil, 2, "no such file"},
		{"unknown env", []string{"config"}, map[string]string{"MEMOFLOW_BOGUS": "1"}, 2, "unknown environment variable MEMOFLOW_BOGUS"},
		{"bad env value", []string{"config"}, map[string]string{"MEMOFLOW_POLL_RECORDS": "many"}, 2, "MEMOFLOW_POLL_RECORDS"},
		{"invalid value", []string{"config", "--poll-records", "0"}, nil, 2, "poll_records: 0 must be at least 1"},
		{"broker without port", []string{"config", "--kafka-brokers", "localhost"}, nil, 2, "has no port"},
		{"unknown stage", []string{"stage", "nope", "--kafka-brokers", "127.0.0.1:1"}, nil, 2, "unknown stage \"nope\""},
		{"http port in use", []string{"run", "--http-addr", l.Addr().String(), "--var-dir", dir}, nil, 1, "already in use"},
		{"unreachable kafka", []string{"run", "--http-addr", "127.0.0.1:0", "--kafka-brokers", "127.0.0.1:1", "--kafka-dial-timeout", "200ms"}, nil, 1, "is not reachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q lacks %q", errs, tc.want)
			}
			if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
				t.Errorf("stderr has a stack trace: %s", errs)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "memoflow ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// A slice flag given on the command line keeps exactly its elements after
// loadConfig re-applies the flags (Set would append "[a,b]" to them).
func TestLoadConfigSliceFlags(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	c := bindConfig(cmd)
	var got []string
	var arr []string
	cmd.Flags().StringSliceVar(&got, "test-list", []string{"default"}, "")
	cmd.Flags().StringArrayVar(&arr, "test-array", nil, "")
	if err := cmd.Flags().Parse([]string{"--test-list", "a,b", "--test-list", "c", "--test-array", "x,y"}); err != nil {
		t.Fatal(err)
	}
	if err := loadConfig(cmd, c); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "a|b|c" {
		t.Errorf("slice flag after loadConfig = %q, want [a b c]", got)
	}
	if strings.Join(arr, "|") != "x,y" {
		t.Errorf("array flag after loadConfig = %q, want [x,y]", arr)
	}
}
