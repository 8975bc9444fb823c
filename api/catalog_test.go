package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/cachettest"
)

// The catalog is what the server was given, with the upload limits and the job queue's presence filled
// in from the services it runs.
func TestCatalog(t *testing.T) {
	given := cachet.Catalog{Model: "m", DefaultPreset: "balanced", MaxImages: 16,
		Presets: []cachet.Preset{{Name: "balanced", Steps: 20, Cache: cachet.CachePolicy{Name: "none"}}}}
	subjects := cachettest.NewSubjects()
	for _, tc := range []struct {
		name string
		jobs cachet.Jobs
	}{{"in the request", nil}, {"on the queue", &cachettest.Jobs{}}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := api.New(api.Options{Catalog: given, Subjects: subjects, Jobs: tc.jobs})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			resp, body := call(t, "GET", srv.URL+"/v1/catalog", "", nil, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v1/catalog = %d %s", resp.StatusCode, body)
			}
			var got cachet.Catalog
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			want := given
			want.Upload, want.Jobs = subjects.UploadLimits(), tc.jobs != nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("catalog %+v; want %+v", got, want)
			}
		})
	}
}

// The console's page, assets and reports answer without a key; /healthz says that keys are needed.
func TestConsoleRoutesArePublic(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("console " + r.URL.Path)) })
	s, err := api.New(api.Options{Console: page, Auth: &api.Auth{Keys: &cachettest.Keys{}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path, want string
		code       int
	}{
		{"/", "console /", 200},
		{"/console/js/app.js", "console /console/js/app.js", 200},
		{"/reports/index.json", "console /reports/index.json", 200},
		{"/healthz", `"auth":"keys"`, 200},
		{"/v1/catalog", "unauthenticated", 401},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := call(t, "GET", srv.URL+tc.path, "", nil, "")
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s = %d %q; want %d with %q", tc.path, resp.StatusCode, body, tc.code, tc.want)
			}
		})
	}
}
