package sendclient

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/ingest/archive"
)

// Item is one MeMo to send.
type Item struct {
	Name string // file name inside the batch
	UUID string // messageUUID (lower case)
	Data []byte
}

// Source yields the messages to send; Next returns io.EOF at the end.
type Source interface {
	Next() (Item, error)
	// Total is the number of messages, or -1 when unknown in advance.
	Total() int
}

// uuidOf reads the messageUUID from the header.
func uuidOf(name string, data []byte) (string, error) {
	m, err := memo.Parse(data)
	if err != nil {
		return "", fmt.Errorf("%s: %v", name, err)
	}
	if m.Header.MessageUUID == "" {
		return "", fmt.Errorf("%s: no messageUUID", name)
	}
	return strings.ToLower(m.Header.MessageUUID), nil
}

// DirSource reads *.xml files of a directory (sorted, not recursive).
type DirSource struct {
	dir   string
	files []string
	i     int
}

func NewDirSource(dir string) (*DirSource, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no *.xml MeMo files", dir)
	}
	return &DirSource{dir: dir, files: files}, nil
}

func (s *DirSource) Total() int { return len(s.files) }

func (s *DirSource) Next() (Item, error) {
	if s.i >= len(s.files) {
		return Item{}, io.EOF
	}
	name := s.files[s.i]
	s.i++
	data, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return Item{}, err
	}
	u, err := uuidOf(name, data)
	return Item{Name: name, UUID: u, Data: data}, err
}

// ArchiveSource reads a tar or tar.lzma file (with the same limits the
// server applies, so a hostile archive is refused here too).
type ArchiveSource struct {
	f  *os.File
	ar *archive.Reader
}

func NewArchiveSource(path string) (*ArchiveSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	compressed := strings.HasSuffix(path, ".lzma")
	lim := archive.DefaultLimits()
	lim.MaxTotalBytes = 1 << 40 // a local file may hold many shipments; batches are re-cut
	lim.MaxEntries = 1 << 30
	return &ArchiveSource{f: f, ar: archive.NewReader(f, lim, compressed)}, nil
}

func (s *ArchiveSource) Total() int { return -1 }

func (s *ArchiveSource) Next() (Item, error) {
	e, err := s.ar.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			s.f.Close()
		}
		return Item{}, err
	}
	data, err := e.Bytes()
	if err != nil {
		return Item{}, err
	}
	u, err := uuidOf(e.Name, data)
	return Item{Name: e.Name, UUID: u, Data: data}, err
}

// GenSource generates n messages with the MeMo generator.
type GenSource struct {
	g    *memo.Generator
	n, i int
}

func NewGenSource(n int, cfg memo.GenConfig) *GenSource {
	return &GenSource{g: memo.NewGenerator(cfg), n: n}
}

func (s *GenSource) Total() int { return s.n }

func (s *GenSource) Next() (Item, error) {
	if s.i >= s.n {
		return Item{}, io.EOF
	}
	s.i++
	data, u := s.g.Next(nil)
	us := strings.ToLower(u.String())
	return Item{Name: us + ".xml", UUID: us, Data: data}, nil
}
