package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/cachettest"
	"github.com/cachetlab/cachet/internal/testhttp"
)

// fakeServer is the API over the in-memory services: the handlers' own behaviour, in milliseconds, with no
// model and no storage.
func fakeServer(t *testing.T) (*httptest.Server, *cachettest.Generator) {
	t.Helper()
	gen := &cachettest.Generator{}
	s, err := api.New(api.Options{Generator: gen, Subjects: cachettest.NewSubjects(), Classifier: cachettest.NewClassifier()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, gen
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 28, 28))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func subjectForm(t *testing.T, name string, files int) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if name != "" {
		if err := mw.WriteField("name", name); err != nil {
			t.Fatal(err)
		}
	}
	for range files {
		w, err := mw.CreateFormFile("images", "item.png")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pngBytes(t)) //nolint:errcheck // a bytes.Buffer
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// step is one request of a flow and what it must answer; save keeps a field of the answer for later steps.
type step struct {
	name, method, path, contentType string
	body                            func(vars map[string]string) []byte
	code                            int
	contains                        string
	save                            map[string]string // variable → JSON field of the answer
}

func jsonBody(s string) func(map[string]string) []byte {
	return func(vars map[string]string) []byte {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return []byte(s)
	}
}

func runFlow(t *testing.T, srv *httptest.Server, steps []step) {
	t.Helper()
	vars := map[string]string{}
	for _, st := range steps {
		path := st.path
		for k, v := range vars {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		var body []byte
		if st.body != nil {
			body = st.body(vars)
		}
		resp, b := exchange(t, st.method, srv.URL+path, st.contentType, bytes.NewReader(body))
		if resp.StatusCode != st.code || !strings.Contains(string(b), st.contains) {
			t.Fatalf("%s: %s %s = %d %s; want %d containing %q", st.name, st.method, path, resp.StatusCode, b, st.code, st.contains)
		}
		if resp.StatusCode >= 400 {
			var e api.ErrorBody
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: error without the envelope: %s", st.name, b)
			}
		}
		for name, field := range st.save {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			v, _ := m[field].(string)
			vars[name] = v
		}
	}
}

func TestSubjectRoutes(t *testing.T) {
	srv, _ := fakeServer(t)
	form := func(name string, files int) (string, func(map[string]string) []byte) {
		ct, b := subjectForm(t, name, files)
		return ct, func(map[string]string) []byte { return b }
	}
	ct1, one := form("coat", 1)
	ct2, two := form("bag", 2)
	ctNone, noName := form("", 1)
	ctMany, nine := form("many", 9)
	runFlow(t, srv, []step{
		{"upload", "POST", "/v1/subjects", ct1, one, 201, `"status":"ready"`, map[string]string{"first": "id"}},
		{"another", "POST", "/v1/subjects", ct2, two, 201, `"name":"bag"`, map[string]string{"second": "id"}},
		{"no name", "POST", "/v1/subjects", ctNone, noName, 400, "name is required", nil},
		{"nine images", "POST", "/v1/subjects", ctMany, nine, 400, "1 to 8", nil},
		{"not multipart", "POST", "/v1/subjects", "application/json", jsonBody(`{}`), 415, "multipart/form-data", nil},
		{"read", "GET", "/v1/subjects/{first}", "", nil, 200, `"name":"coat"`, nil},
		{"list newest first", "GET", "/v1/subjects?limit=1", "", nil, 200, `"name":"bag"`, nil},
		{"list page 2", "GET", "/v1/subjects?limit=1&offset=1", "", nil, 200, `"name":"coat"`, nil},
		{"list by status", "GET", "/v1/subjects?status=failed", "", nil, 200, `{"subjects":[]}`, nil},
		{"bad limit", "GET", "/v1/subjects?limit=500", "", nil, 400, "limit must be", nil},
		{"limit not a number", "GET", "/v1/subjects?limit=ten", "", nil, 400, "limit must be an integer", nil},
		{"bad status", "GET", "/v1/subjects?status=lost", "", nil, 400, "status must be", nil},
		{"reference", "GET", "/v1/subjects/{second}/refs/1", "", nil, 200, "PNG", nil},
		{"reference out of range", "GET", "/v1/subjects/{second}/refs/2", "", nil, 404, "references 0…1", nil},
		{"reference not a number", "GET", "/v1/subjects/{second}/refs/one", "", nil, 400, "must be an integer", nil},
		{"similar", "GET", "/v1/subjects/{first}/similar?k=3", "", nil, 200, `"name":"bag"`, nil},
		{"similar k", "GET", "/v1/subjects/{first}/similar?k=0.5", "", nil, 400, "k must be an integer", nil},
		{"retry a ready one", "POST", "/v1/subjects/{first}/retry", "", nil, 409, "nothing to retry", nil},
		{"delete", "DELETE", "/v1/subjects/{first}", "", nil, 204, "", nil},
		{"deleted", "GET", "/v1/subjects/{first}", "", nil, 404, "no subject", nil},
		{"deleted's reference", "GET", "/v1/subjects/{first}/refs/0", "", nil, 404, "no subject", nil},
		{"unknown route", "GET", "/v1/subject", "", nil, 404, "no endpoint", nil},
		{"wrong method", "PUT", "/v1/subjects", "", nil, 404, "no endpoint PUT", nil},
	})
}

func TestClassifyRoutes(t *testing.T) {
	srv, _ := fakeServer(t)
	img := `"` + b64bytes(pngBytes(t)) + `"`
	runFlow(t, srv, []step{
		{"create", "POST", "/v1/collections", "application/json", jsonBody(`{"name": "shop", "labels": ["coat", "bag"]}`), 201, `"labels":["coat","bag"]`, map[string]string{"col": "id"}},
		{"taken name", "POST", "/v1/collections", "application/json", jsonBody(`{"name": "shop", "labels": ["a", "b"]}`), 409, "exists", nil},
		{"one label", "POST", "/v1/collections", "application/json", jsonBody(`{"name": "x", "labels": ["a"]}`), 400, "labels", nil},
		{"image not base64", "POST", "/v1/collections/{col}/samples", "application/json", jsonBody(`{"samples": [{"image": "%%%"}]}`), 400, "base64", nil},
		{"samples", "POST", "/v1/collections/{col}/samples", "application/json", jsonBody(`{"samples": [{"image": ` + img + `, "label": "bag"}, {"image": ` + img + `}]}`), 200, `"samples":2`, nil},
		{"unknown label", "POST", "/v1/collections/{col}/samples", "application/json", jsonBody(`{"samples": [{"image": ` + img + `, "label": "hat"}]}`), 400, "hat", nil},
		{"unbuilt", "POST", "/v1/classify", "application/json", jsonBody(`{"collection": "{col}", "images": [` + img + `]}`), 409, "not built", nil},
		{"build with no body", "POST", "/v1/collections/{col}/build", "", nil, 200, `"method":"tip-adapter"`, nil},
		{"build as TFUP", "POST", "/v1/collections/{col}/build", "application/json", jsonBody(`{"method": "tfup"}`), 200, `"method":"tfup"`, nil},
		{"build, unknown field", "POST", "/v1/collections/{col}/build", "application/json", jsonBody(`{"methd": "tfup"}`), 400, "unknown field", nil},
		{"read", "GET", "/v1/collections/{col}", "", nil, 200, `"labelled":1`, nil},
		{"list", "GET", "/v1/collections", "", nil, 200, `"name":"shop"`, nil},
		{"classify", "POST", "/v1/classify", "application/json", jsonBody(`{"collection": "{col}", "images": [` + img + `, ` + img + `]}`), 200, `"label":"coat"`, nil},
		{"zero-shot", "POST", "/v1/classify", "application/json", jsonBody(`{"images": [` + img + `]}`), 200, `"method":"zero-shot"`, nil},
		{"no images", "POST", "/v1/classify", "application/json", jsonBody(`{"images": []}`), 400, "1…256 images", nil},
		{"unknown collection", "GET", "/v1/collections/nope", "", nil, 404, "no collection", nil},
	})
}

func TestGenerateRoute(t *testing.T) {
	srv, gen := fakeServer(t)
	runFlow(t, srv, []step{
		{"defaults", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large coat"}`), 200, `"png_base64"`, nil},
		{"four", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large coat", "n": 4, "cache": {"name": "fora", "params": {"interval": 2}}}`), 200, `"index":3`, nil},
		{"no prompt", "POST", "/v1/generate", "application/json", jsonBody(`{"n": 2}`), 400, "prompt", nil},
		{"wrong type", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a coat", "n": "two"}`), 400, "invalid JSON", nil},
	})
	if len(gen.Requests) != 2 || gen.Requests[1].Cache.Name != "fora" || gen.Requests[1].Cache.Params["interval"] != 2 {
		t.Fatalf("the generator got %+v", gen.Requests)
	}
}

// Without a model, model routes answer 503 naming the fix, with Retry-After.
func TestRoutesWithoutServices(t *testing.T) {
	s, err := api.New(api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, path := range []string{"/v1/generate", "/v1/classify", "/v1/subjects", "/v1/collections"} {
		resp, b := exchange(t, http.MethodPost, srv.URL+path, "application/json", strings.NewReader(`{}`))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"unavailable"`) {
			t.Errorf("POST %s = %d %s", path, resp.StatusCode, b)
		}
	}
}

func b64bytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func exchange(t *testing.T, method, url, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return testhttp.Do(t, method, url, contentType, body)
}
