package acceptance_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The API's committed contract (api/openapi.json): every answer the suite gets is checked against it.
var (
	contractOnce   sync.Once
	contractRouter routers.Router
	contractErr    error
)

func contract(t *testing.T) routers.Router {
	t.Helper()
	contractOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(filepath.Join(repoRoot(t), "api", "openapi.json"))
		if err != nil {
			contractErr = err
			return
		}
		contractRouter, contractErr = legacy.NewRouter(doc)
	})
	if contractErr != nil {
		t.Fatalf("loading the API contract: %v", contractErr)
	}
	return contractRouter
}

// checkContract fails the test when an answer does not match the contract: an undocumented route, or a
// body that is not the documented schema for its status (errors: the error envelope).
func checkContract(t *testing.T, method, rawURL string, status int, header http.Header, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := contract(t).FindRoute(req)
	if err != nil && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) {
		return // a path or method the API does not serve (a hostile request): no route to check against
	}
	if err != nil {
		t.Errorf("%s %s answered %d, but the contract has no such route: %v", method, req.URL.Path, status, err)
		return
	}
	ctype := header.Get("Content-Type")
	if ctype == "" && len(body) > 0 {
		ctype = "application/json"
	}
	if !strings.HasPrefix(ctype, "application/json") {
		return // event streams, Prometheus text: documented as strings
	}
	h := header.Clone()
	h.Set("Content-Type", ctype)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d against the contract: %v\n%s", method, req.URL.Path, status, err, tail(string(body), 400))
	}
}
