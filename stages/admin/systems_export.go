package admin

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"io"
	"net/http"
	"slices"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Systems is what the systems workbook holds of an organisation: its
// standard systems and recipient systems by ID, and its company
// registration (nil if it is none) for the forwarding row.
type Systems struct {
	Standard  []*registry.System
	Recipient []*registry.System
	Company   *registry.Company
}

// LoadSystems reads organisation org's systems and forwarding from r.
func LoadSystems(r Reader, org string) Systems {
	var s Systems
	r.Each(registry.KindSystem, org, func(e registry.Entity) bool {
		switch x := e.(*registry.System); x.SysKind {
		case registry.SystemStandard:
			s.Standard = append(s.Standard, x)
		case registry.SystemRecipient:
			s.Recipient = append(s.Recipient, x)
		}
		return true
	})
	byID := func(a, b *registry.System) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(s.Standard, byID)
	slices.SortFunc(s.Recipient, byID)
	if e, ok := r.Get("com/" + org); ok {
		s.Company = e.(*registry.Company)
	}
	return s
}

func sysRows(ss []*registry.System) []entityRow {
	out := make([]entityRow, len(ss))
	for i, s := range ss {
		out[i] = entityRow{s: s}
	}
	return out
}

// standardIDs lists every standard system's id, for the Standardsystem
// drop-down of the exported workbook.
func standardIDs(r Reader) []string {
	var ids []string
	r.Each(registry.KindSystem, "", func(e registry.Entity) bool {
		if s := e.(*registry.System); s.SysKind == registry.SystemStandard && !s.Deactivated {
			ids = append(ids, s.ID)
		}
		return true
	})
	slices.Sort(ids)
	return ids
}

// WriteSystemsXLSX writes s in the import layout: sheets Modtagersystemer,
// Standardsystemer and Videresendelse (its one row only for a company),
// with drop-downs for Aktiv and, from choices, for Standardsystem.
func WriteSystemsXLSX(w io.Writer, s Systems, choices []string) error {
	var fwd []entityRow
	if s.Company != nil {
		fwd = []entityRow{{c: s.Company}}
	}
	return writeWorkbook(w, []xlsxSheet{
		{SheetSystems, SystemColumns, sysRows(s.Recipient)},
		{SheetStandard, StandardColumns, sysRows(s.Standard)},
		{SheetForwarding, ForwardingColumns, fwd},
	}, map[string][]string{"template": choices})
}

// WriteSystemsCSV writes s as one CSV: Type, the system columns, the
// forwarding columns; UTF-8 with a BOM, cells escaped as in the workbook.
func WriteSystemsCSV(w io.Writer, s Systems) error {
	var buf bytes.Buffer
	buf.WriteString("\xEF\xBB\xBF")
	cw := csv.NewWriter(&buf)
	all := csvSystemColumns()
	hdr := []string{CSVTypeHeader}
	for _, c := range all {
		hdr = append(hdr, c.Header)
	}
	if err := cw.Write(hdr); err != nil {
		return err
	}
	for _, part := range []struct {
		typ string
		ss  []*registry.System
	}{{TypeStandard, s.Standard}, {TypeSystem, s.Recipient}} {
		for _, x := range part.ss {
			rec := append([]string{part.typ}, rowCells(SystemColumns, entityRow{s: x})...)
			rec = append(rec, make([]string, len(ForwardingColumns))...)
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	if s.Company != nil {
		rec := append([]string{TypeForwarding}, make([]string, len(SystemColumns))...)
		rec = append(rec, rowCells(ForwardingColumns, entityRow{c: s.Company})...)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ExportSystems writes organisation org's systems workbook in format.
func ExportSystems(w io.Writer, r Reader, org string, format Format) error {
	s := LoadSystems(r, org)
	switch format {
	case FormatXLSX, "":
		return WriteSystemsXLSX(w, s, standardIDs(r))
	case FormatCSV:
		return WriteSystemsCSV(w, s)
	}
	return fieldErr(CodeBadParameter, "format", "%q is neither xlsx nor csv", format)
}

func (a *API) exportSystems(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	q, err := query(r, "format")
	if err != nil {
		return err
	}
	format := Format(q.Get("format"))
	if format == "" {
		format = FormatXLSX
	}
	var buf bytes.Buffer
	if err := ExportSystems(&buf, a.reader, orgOf(r), format); err != nil {
		return err
	}
	writeFile(w, "systemer-"+orgOf(r), format, buf.Bytes())
	return nil
}

func (a *API) importSystems(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	data, format, dry, err := a.readUpload(w, r)
	if err != nil {
		return err
	}
	may := SystemsAccess{
		Recipient: isOp(p) || p.Has(auth.RoleSystemAdmin),
		Standard:  isOp(p) || p.Has(auth.RoleSupplier),
	}
	res, err := a.importer.ImportSystems(r.Context(), orgOf(r), actor(p), data, format, dry, may)
	if err != nil {
		return err
	}
	a.log.Info("systems imported", "org", orgOf(r), "actor", actor(p), "dry_run", dry, "written", res.Written,
		"recipient_systems", res.RecipientSystems, "standard_systems", res.StandardSystems, "forwarding", res.Forwarding, "api_keys", len(res.APIKeys))
	writeJSON(w, http.StatusOK, res)
	return nil
}
