// Package integration_test drives the API over the real services: Postgres, the S3 server, and the model
// on its worker. The api package's own tests use in-memory services instead.
package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/internal/testhttp"
)

func newServer(t *testing.T, comps ...api.Component) *httptest.Server {
	t.Helper()
	s, err := api.New(api.Options{Version: "test", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return testhttp.Get(t, url)
}

func TestReadyzReportsRealComponents(t *testing.T) {
	db := testenv.DB(t)
	objects := testenv.Objects(t)
	ok := newServer(t,
		api.Component{Name: "postgres", Check: func(ctx context.Context) (any, error) { return nil, db.Check(ctx) }},
		api.Component{Name: "object_store", Check: func(ctx context.Context) (any, error) { return nil, objects.Check(ctx) }},
	)
	code, body := get(t, ok.URL+"/readyz")
	var rb api.ReadyBody
	if err := json.Unmarshal(body, &rb); err != nil {
		t.Fatal(err)
	}
	if code != 200 || rb.Status != "ok" || rb.Components["postgres"].Status != "ok" || rb.Components["object_store"].Status != "ok" {
		t.Fatalf("/readyz = %d %s", code, body)
	}

	failing := newServer(t,
		api.Component{Name: "postgres", Check: func(ctx context.Context) (any, error) { return nil, db.Check(ctx) }},
		api.Component{Name: "model", Check: func(context.Context) (any, error) { return nil, errors.New("secret internal detail") }},
	)
	code, body = get(t, failing.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"model":{"status":"error"`) {
		t.Fatalf("/readyz with a failing component = %d %s", code, body)
	}
	if strings.Contains(string(body), "secret internal detail") {
		t.Fatalf("/readyz leaked an internal error: %s", body)
	}
}
