package admin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/openapi"
	"github.com/memoflow/memoflow/schemas/registry"
)

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// jsonNames are the JSON field names of a struct type.
func jsonNames(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func schemaProps(t *testing.T, doc *openapi3.T, name string) []string {
	t.Helper()
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		t.Fatalf("openapi.json has no components.schemas.%s", name)
	}
	var out []string
	for p := range s.Value.Properties {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func enumOf(t *testing.T, doc *openapi3.T, schema, prop string) []string {
	t.Helper()
	var out []string
	for _, v := range doc.Components.Schemas[schema].Value.Properties[prop].Value.Enum {
		out = append(out, v.(string))
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIShapes: every field of the admin API's new JSON shapes is
// described, and the enums are the Go tables.
func TestOpenAPIShapes(t *testing.T) {
	doc := loadDoc(t)
	for name, v := range map[string]any{
		"AdminSystem": SystemJSON{}, "AdminStandardSystem": StandardSystemJSON{}, "AdminSelection": SelectionJSON{},
		"AdminAPIKey": APIKeyJSON{}, "AdminForwarding": ForwardingJSON{}, "AdminSystemsImportResult": SystemsResult{},
		"AdminImportCounts": Counts{}, "AdminError": Error{}, "AdminRowError": RowError{},
	} {
		if got, want := schemaProps(t, doc, name), jsonNames(v); !slices.Equal(got, want) {
			t.Errorf("%s: properties %v, want the Go fields %v", name, got, want)
		}
	}
	var kinds []string
	for k := range systemKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var protos []string
	for p := registry.Protocol(1); p.String() != ""; p++ {
		protos = append(protos, p.String())
	}
	sort.Strings(protos)
	var roles []string
	for r := registry.Role(1); r.String() != ""; r++ {
		roles = append(roles, r.String())
	}
	sort.Strings(roles)
	fwd := []string{ForwardNone}
	for k := registry.ForwardKind(1); k.String() != ""; k++ {
		fwd = append(fwd, k.String())
	}
	sort.Strings(fwd)
	for _, c := range []struct {
		schema, prop string
		want         []string
	}{
		{"AdminSystem", "kind", kinds}, {"AdminSystem", "protocol", protos}, {"AdminSystem", "role", roles},
		{"AdminStandardSystem", "protocol", protos}, {"AdminSelection", "role", roles}, {"AdminForwarding", "kind", fwd},
	} {
		if got := enumOf(t, doc, c.schema, c.prop); !slices.Equal(got, c.want) {
			t.Errorf("%s.%s enum %v, want %v", c.schema, c.prop, got, c.want)
		}
	}
}

// exchange is one request whose answer must validate against
// openapi.json.
type exchange struct {
	who, method, path, url string
	body                   []byte
	ct                     string
	status                 int
}

func (e *env) validate(t *testing.T, doc *openapi3.T, x exchange) []byte {
	t.Helper()
	item := doc.Paths.Value(Prefix + x.path)
	if item == nil || item.GetOperation(x.method) == nil {
		t.Fatalf("openapi.json has no %s %s", x.method, Prefix+x.path)
	}
	newReq := func() *http.Request {
		req, _ := http.NewRequest(x.method, e.srv.URL+Prefix+x.url, bytes.NewReader(x.body))
		req.Header.Set("Authorization", "Bearer "+e.tokens[x.who])
		if x.ct != "" {
			req.Header.Set("Content-Type", x.ct)
		}
		return req
	}
	params := map[string]string{}
	ps, us := strings.Split(x.path, "/"), strings.Split(strings.SplitN(x.url, "?", 2)[0], "/")
	for i, s := range ps {
		if strings.HasPrefix(s, "{") && i < len(us) {
			params[strings.Trim(s, "{}")] = us[i]
		}
	}
	in := &openapi3filter.RequestValidationInput{
		Request: newReq(), PathParams: params,
		Route:   &routers.Route{Spec: doc, Path: Prefix + x.path, PathItem: item, Method: x.method, Operation: item.GetOperation(x.method)},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	if x.body != nil && x.ct == "application/json" {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Fatalf("%s %s: the request does not match openapi.json: %v", x.method, x.url, err)
		}
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != x.status {
		t.Fatalf("%s %s: %d, want %d: %s", x.method, x.url, resp.StatusCode, x.status, body)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Fatalf("%s %s: the %d answer does not match openapi.json: %v\n%s", x.method, x.url, resp.StatusCode, err, body)
	}
	return body
}

// TestOpenAPIAnswers: the real answers of the standard-system, forwarding
// and systems-workbook endpoints validate against openapi.json.
func TestOpenAPIAnswers(t *testing.T) {
	doc := loadDoc(t)
	e := newEnv(t)
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	A, C := "/organisations/"+orgA, "/organisations/"+supplierOrg
	steps := []exchange{
		{"supC", "PUT", "/organisations/{org}/standard-systems/{id}", C + "/standard-systems/std-sftp",
			j(SystemJSON{Name: "Arkiv", Protocol: "SFTP", Endpoint: "sftp://h.example", SFTPUser: "u", SSHHostKey: keys().host1, Folder: "/in", MemoVersion: "1.2", Active: true}), "application/json", 201},
		{"supC", "PUT", "/organisations/{org}/standard-systems/{id}", C + "/standard-systems/std-bad",
			j(SystemJSON{Name: "Arkiv", Protocol: "SFTP", Endpoint: "sftp://h.example", SFTPUser: "u", Folder: "/in"}), "application/json", 422},
		{"sysA", "GET", "/standard-systems", "/standard-systems", nil, "", 200},
		{"sysA", "POST", "/organisations/{org}/standard-system-selections", A + "/standard-system-selections",
			j(SelectionJSON{ID: "sel-1", StandardSystem: "std-sftp", Name: "Arkiv via leverandør", Role: "regular"}), "application/json", 201},
		{"sysA", "POST", "/organisations/{org}/recipient-systems/{id}/api-key", A + "/recipient-systems/sel-1/api-key", nil, "", 201},
		{"sysA", "PUT", "/organisations/{org}/recipient-systems/{id}", A + "/recipient-systems/sys-smtp",
			j(SystemJSON{Name: "SMTP", Role: "regular", Protocol: "SMTP", Endpoint: "smtp://m.example:587", SMTPAddress: "a@b.example", Certificate: keys().cert, MemoVersion: "1.2", Active: true}), "application/json", 201},
		{"sysA", "GET", "/organisations/{org}/recipient-systems", A + "/recipient-systems", nil, "", 200},
		{"sysA", "GET", "/organisations/{org}/recipient-systems/{id}", A + "/recipient-systems/sel-1", nil, "", 200},
		{"supC", "GET", "/organisations/{org}/standard-systems", C + "/standard-systems", nil, "", 200},
		{"supC", "GET", "/organisations/{org}/standard-systems/{id}", C + "/standard-systems/std-sftp", nil, "", 200},
		{"supC", "DELETE", "/organisations/{org}/standard-systems/{id}", C + "/standard-systems/std-sftp", nil, "", 409},
		{"sysC", "PUT", "/organisations/{org}/forwarding", C + "/forwarding", j(ForwardingJSON{Kind: "pickup", To: "https://p.example/in", Credentials: "secret:p"}), "application/json", 200},
		{"sysC", "GET", "/organisations/{org}/forwarding", C + "/forwarding", nil, "", 200},
		{"sysC", "DELETE", "/organisations/{org}/forwarding", C + "/forwarding", nil, "", 204},
		{"sysA", "GET", "/organisations/{org}/systems/export", A + "/systems/export?format=csv", nil, "", 200},
		{"sysA", "POST", "/organisations/{org}/systems/import", A + "/systems/import?dryRun=true",
			sysCSV(map[string]string{"Type": TypeSystem, "ID": "sel-2", "Navn": "x", "Rolle": "regular", "Standardsystem": "std-sftp"}), "text/csv", 200},
		{"sysA", "POST", "/organisations/{org}/systems/import", A + "/systems/import",
			sysCSV(map[string]string{"Type": TypeSystem, "ID": "sel-2", "Navn": "x", "Rolle": "regular", "Standardsystem": "std-sftp"}), "text/csv", 200},
		{"sysA", "POST", "/organisations/{org}/systems/import", A + "/systems/import",
			sysCSV(map[string]string{"Type": TypeSystem, "ID": "sel-3", "Navn": "x", "Rolle": "regular", "Standardsystem": "nope"}), "text/csv", 422},
		{"operator", "GET", "/systems", "/systems?kind=standard", nil, "", 200},
	}
	for _, x := range steps {
		t.Run(x.method+" "+x.url, func(t *testing.T) {
			body := e.validate(t, doc, x)
			if x.url == A+"/systems/import" && x.status == 200 {
				var res SystemsResult
				if err := json.Unmarshal(body, &res); err != nil || len(res.APIKeys) != 1 {
					t.Fatalf("the import issued no key: %s", body)
				}
			}
		})
	}
}
