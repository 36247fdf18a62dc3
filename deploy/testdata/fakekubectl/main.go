// Command fakekubectl is the kubectl that deploy's tests put first on PATH
// when they run k8s/create-secrets.sh: a cluster of Secrets in a directory
// ($FAKE_KUBECTL_STATE), with just the commands the script uses and the
// behaviour of the real ones that the script depends on:
//
//	get namespace NAME                 exit 1 when it does not exist
//	create namespace NAME
//	create secret generic NAME --from-file=KEY=PATH... --dry-run=client -o yaml
//	                                   prints the Secret (as JSON, which is YAML)
//	apply -f -                         stores the Secret read from stdin, replacing its data
//	get secret NAME [-o jsonpath={.data.KEY}]
//	                                   NotFound exits 1; a missing key prints nothing, exit 0
//	patch secret NAME --type=merge -p JSON
//	                                   merges data (null deletes a key)
//
// Anything else fails with "fakekubectl: unsupported", so a script that
// starts to use another command fails its test instead of passing by
// accident. Every call is appended to $FAKE_KUBECTL_STATE/calls.
//
// It is built by the tests (go build ./testdata/fakekubectl); testdata
// keeps it out of ./... .
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Secret is the part of a v1 Secret the script makes and reads.
type Secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   Meta              `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string]string `json:"data"`
}

// Meta is a Secret's metadata.
type Meta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		var nf notFound
		if errors.As(err, &nf) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

type notFound string

func (n notFound) Error() string { return string(n) }

var validKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	state := os.Getenv("FAKE_KUBECTL_STATE")
	if state == "" {
		return errors.New("fakekubectl: FAKE_KUBECTL_STATE is not set")
	}
	if f, err := os.OpenFile(filepath.Join(state, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	ns := "default"
	var pos []string
	flags := map[string]string{}
	var fromFiles []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "-n", "--namespace", "--dry-run", "-o", "--output", "-f", "--filename", "--type", "-p", "--patch", "--from-file":
			if !hasVal {
				if i+1 >= len(args) {
					return fmt.Errorf("fakekubectl: %s needs a value", a)
				}
				i++
				val = args[i]
			}
			switch name {
			case "-n", "--namespace":
				ns = val
			case "--from-file":
				fromFiles = append(fromFiles, val)
			default:
				flags[strings.TrimLeft(name, "-")[:1]] = val
			}
		default:
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("fakekubectl: unsupported flag %s", a)
			}
			pos = append(pos, a)
		}
	}
	nsDir := filepath.Join(state, "namespaces", ns)
	secretFile := func(name string) string { return filepath.Join(nsDir, name+".json") }
	cmd := strings.Join(pos[:min(2, len(pos))], " ")
	switch {
	case cmd == "get namespace" && len(pos) == 3:
		if _, err := os.Stat(filepath.Join(state, "namespaces", pos[2])); err != nil {
			return notFound(fmt.Sprintf("Error from server (NotFound): namespaces %q not found", pos[2]))
		}
		return nil
	case cmd == "create namespace" && len(pos) == 3:
		return os.MkdirAll(filepath.Join(state, "namespaces", pos[2]), 0o700)
	case cmd == "create secret" && len(pos) == 4 && pos[2] == "generic":
		if flags["d"] != "client" || flags["o"] != "yaml" {
			return errors.New("fakekubectl: unsupported: create secret without --dry-run=client -o yaml (the script must not create on the server)")
		}
		s := Secret{APIVersion: "v1", Kind: "Secret", Metadata: Meta{Name: pos[3], Namespace: ns}, Data: map[string]string{}}
		for _, ff := range fromFiles {
			key, path, ok := strings.Cut(ff, "=")
			if !ok {
				key, path = filepath.Base(ff), ff
			}
			if !validKey.MatchString(key) {
				return fmt.Errorf("error: %q is not a valid key name for a Secret", key)
			}
			if _, dup := s.Data[key]; dup {
				return fmt.Errorf("error: cannot add key %s, another key by that name already exists", key)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("error: %v", err)
			}
			s.Data[key] = base64.StdEncoding.EncodeToString(b)
		}
		out, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	case cmd == "apply" && len(pos) == 1 && flags["f"] == "-":
		dec := json.NewDecoder(stdin)
		dec.DisallowUnknownFields()
		var s Secret
		if err := dec.Decode(&s); err != nil {
			return fmt.Errorf("fakekubectl: apply: not a Secret this fake made: %v", err)
		}
		if s.APIVersion != "v1" || s.Kind != "Secret" || s.Metadata.Name == "" {
			return fmt.Errorf("fakekubectl: apply: %s %s %q", s.APIVersion, s.Kind, s.Metadata.Name)
		}
		if s.Metadata.Namespace != "" {
			ns = s.Metadata.Namespace
			nsDir = filepath.Join(state, "namespaces", ns)
		}
		if _, err := os.Stat(nsDir); err != nil {
			return notFound(fmt.Sprintf("Error from server (NotFound): namespaces %q not found", ns))
		}
		if err := store(secretFile(s.Metadata.Name), s); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "secret/%s configured\n", s.Metadata.Name)
		return err
	case cmd == "get secret" && len(pos) == 3:
		s, err := load(secretFile(pos[2]))
		if err != nil {
			return err
		}
		switch o := flags["o"]; {
		case o == "":
			_, err = fmt.Fprintf(stdout, "NAME TYPE DATA\n%s Opaque %d\n", pos[2], len(s.Data))
			return err
		case strings.HasPrefix(o, "jsonpath={.data.") && strings.HasSuffix(o, "}"):
			key := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(o, "jsonpath={.data."), "}"), `\.`, ".")
			_, err = io.WriteString(stdout, s.Data[key]) // missing: "" and exit 0, as kubectl get
			return err
		}
		return fmt.Errorf("fakekubectl: unsupported output %q", flags["o"])
	case cmd == "patch secret" && len(pos) == 3 && flags["t"] == "merge":
		s, err := load(secretFile(pos[2]))
		if err != nil {
			return err
		}
		var p struct {
			Data map[string]*string `json:"data"`
		}
		dec := json.NewDecoder(strings.NewReader(flags["p"]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("error: unable to parse %q: %v", flags["p"], err)
		}
		for k, v := range p.Data {
			if v == nil {
				delete(s.Data, k)
				continue
			}
			if _, err := base64.StdEncoding.DecodeString(*v); err != nil {
				return fmt.Errorf("The Secret %q is invalid: data[%s]: illegal base64 data", pos[2], k)
			}
			s.Data[k] = *v
		}
		if err := store(secretFile(pos[2]), s); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "secret/%s patched\n", pos[2])
		return err
	}
	return fmt.Errorf("fakekubectl: unsupported: kubectl %s", strings.Join(args, " "))
}

func load(file string) (Secret, error) {
	var s Secret
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return s, notFound(fmt.Sprintf("Error from server (NotFound): secrets %q not found", strings.TrimSuffix(filepath.Base(file), ".json")))
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, err
	}
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	return s, nil
}

func store(file string, s Secret) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o600)
}
