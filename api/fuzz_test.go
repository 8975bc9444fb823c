package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
)

// acceptAll stands behind every route while the fuzzers feed the edge: it answers each call it gets with
// a conflict, so a response tells whether the edge let the input through.
type acceptAll struct{}

var errReached = cachet.Errorf(cachet.CodeConflict, "reached the service")

func (acceptAll) Validate(cachet.GenerateRequest) error { return nil }
func (acceptAll) Generate(context.Context, cachet.GenerateRequest) (*cachet.GenerateResult, error) {
	return nil, errReached
}
func (acceptAll) CreateSubject(context.Context, cachet.NewSubject) (*cachet.Subject, error) {
	return nil, errReached
}
func (acceptAll) Subject(context.Context, string) (*cachet.Subject, error) { return nil, errReached }
func (acceptAll) Subjects(context.Context, cachet.SubjectQuery) ([]*cachet.Subject, error) {
	return nil, errReached
}
func (acceptAll) DeleteSubject(context.Context, string) error { return errReached }
func (acceptAll) SimilarSubjects(context.Context, string, int) ([]*cachet.SimilarSubject, error) {
	return nil, errReached
}
func (acceptAll) SubjectReference(context.Context, string, int) ([]byte, error) {
	return nil, errReached
}
func (acceptAll) RetrySubject(context.Context, string) (*cachet.Subject, error) {
	return nil, errReached
}
func (acceptAll) UploadLimits() cachet.UploadLimits {
	return cachet.UploadLimits{MaxImages: 8, MaxImageBytes: 8 << 20, MaxTotalBytes: 24 << 20}
}
func (acceptAll) CreateCollection(context.Context, cachet.NewCollection) (*cachet.Collection, error) {
	return nil, errReached
}
func (acceptAll) Collection(context.Context, string) (*cachet.Collection, error) {
	return nil, errReached
}
func (acceptAll) Collections(context.Context) ([]cachet.Collection, error) { return nil, errReached }
func (acceptAll) AddSamples(context.Context, string, []cachet.Sample) (*cachet.Collection, error) {
	return nil, errReached
}
func (acceptAll) Build(context.Context, string, cachet.BuildRequest) (*cachet.Collection, error) {
	return nil, errReached
}
func (acceptAll) Classify(context.Context, cachet.ClassifyRequest) (*cachet.ClassifyResult, error) {
	return nil, errReached
}

func fuzzHandler(f *testing.F) http.Handler {
	s, err := api.New(api.Options{Generator: acceptAll{}, Subjects: acceptAll{}, Classifier: acceptAll{}})
	if err != nil {
		f.Fatal(err)
	}
	return s.Handler()
}

// serveFuzz sends one body and checks the edge's contract: no panic (a 500), an answer without delay,
// and either a 4xx naming what is wrong or the service reached. (The 100 ms budget is checked in
// TestJSONBodiesAtTheEdge; instrumented fuzzing runs slower, so here a second marks a hang.)
func serveFuzz(t *testing.T, h http.Handler, path, contentType string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	if d := time.Since(start); d > time.Second {
		t.Errorf("%s: answered in %v", path, d)
	}
	switch code := rec.Code; {
	case code == http.StatusConflict: // reached the service
	case code >= 400 && code < 500:
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"message"`)) {
			t.Errorf("%s: %d without the error envelope: %s", path, code, rec.Body.String())
		}
	default:
		t.Errorf("%s: answered %d: %s", path, code, rec.Body.String())
	}
}

func FuzzJSONRequests(f *testing.F) {
	h := fuzzHandler(f)
	paths := []string{"/v1/generate", "/v1/classify", "/v1/collections", "/v1/collections/x/samples", "/v1/collections/x/build"}
	for i, seed := range []string{
		`{"prompt": "a small sneaker on the left", "n": 2, "seed": 7}`,
		`{"prompt": "a large coat", "subject_id": "00000000-0000-4000-8000-000000000000", "cache": {"name": "fora", "params": {"interval": 2}}}`,
		`{"images": ["iVBORw0KGgo="], "top_k": 3, "rerank": "diffusion"}`,
		`{"name": "shop", "labels": ["coat", "bag"], "alpha": 0.3}`,
		`{"samples": [{"image": "iVBORw0KGgo=", "label": "bag"}]}`,
		`{"method": "tip-adapter", "values": "solved", "tune": true, "lambda": 0.1}`,
		`{"prompt": 1e999}`, `{"n": -1}`, `[]`, `null`, `{} {}`, `{"images": [[[[[[]]]]]]}`, "\xff\xfe",
	} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		serveFuzz(t, h, paths[int(route)%len(paths)], "application/json", body)
	})
}

func FuzzSubjectUpload(f *testing.F) {
	h := fuzzHandler(f)
	const boundary = "XyZ"
	for _, seed := range []string{
		"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmy-coat\r\n--XyZ\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--XyZ--\r\n",
		"--XyZ\r\nContent-Disposition: form-data; name=\"class\"\r\n\r\ncoat\r\n--XyZ--\r\n",
		"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n",
		"--XyZ\r\n\r\n--XyZ--",
		"garbage",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		serveFuzz(t, h, "/v1/subjects", "multipart/form-data; boundary="+boundary, body)
	})
}
