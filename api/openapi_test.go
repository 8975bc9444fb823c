package api_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/cachettest"
)

var update = flag.Bool("update", false, "rewrite api/openapi.json from the wire types")

// The committed contract is the one the server serves, it is a valid OpenAPI 3.1 document, and every route
// the router has is in it (and nothing else).
func TestOpenAPIContract(t *testing.T) {
	data, err := api.SpecJSON("dev")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(api.SpecFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(api.SpecFile)
	if err != nil || string(committed) != string(data) {
		t.Fatalf("api/%s is not the contract the wire types make (%v); run: go test ./api -run TestOpenAPIContract -update", api.SpecFile, err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the contract is not valid OpenAPI: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q; want 3.1", doc.OpenAPI)
	}
	s, err := api.New(api.Options{Generator: &cachettest.Generator{}, Subjects: cachettest.NewSubjects(), Classifier: cachettest.NewClassifier(), Jobs: &cachettest.Jobs{}})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, r := range s.Routes() {
		path := r.Method + " " + pathTemplate(r.Path)
		routes[path] = true
		item := doc.Paths.Find(pathTemplate(r.Path))
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s is not in the contract", path)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !routes[method+" "+path] {
				t.Errorf("the contract has %s %s, which no route serves", method, path)
			}
		}
	}
}

// The generated client (api/client) is the one the committed contract makes.
func TestGeneratedClientIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	out := filepath.Join(t.TempDir(), "client.gen.go")
	cmd := exec.Command("go", "tool", "oapi-codegen", "-generate", "types,client", "-package", "client", "-o", out, api.SpecFile)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("client", "client.gen.go"))
	if err != nil || string(committed) != string(fresh) {
		t.Fatalf("api/client is not generated from api/openapi.json (%v); run: go generate ./api", err)
	}
}

// pathTemplate writes a gin path (/v1/subjects/:id) as OpenAPI does (/v1/subjects/{id}).
func pathTemplate(ginPath string) string {
	segs := strings.Split(ginPath, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}
