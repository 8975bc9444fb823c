package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/internal/testhttp"
	"github.com/cachetlab/cachet/subjects"
)

// personalizationServer serves the subject and generate endpoints on a random-weight model with the
// default architecture, against the real Postgres and S3.
func personalizationServer(t *testing.T, withAdapters bool, limits subjects.Limits) *httptest.Server {
	t.Helper()
	stack := generatetest.New(t)
	db, objects := testenv.DB(t), testenv.Objects(t)
	subs := subjects.New(db, objects, stack.Extract, subjects.Options{Limits: limits})
	opts := generate.Options{ModelID: stack.ModelID}
	if withAdapters {
		opts.Personalizer = stack.Adapters(t)
	}
	gen := generate.New(stack.Worker, stack.DiT, opts)
	s, err := api.New(api.Options{Version: "test", Subjects: subs, Generator: generate.NewEndpoint(gen, subs, db, objects)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// noisePNG is a w×h PNG of random opaque pixels (it barely compresses: about 3·w·h bytes).
func noisePNG(t *testing.T, w, h int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type formFile struct {
	field, name string
	data        []byte
}

// upload posts a multipart form: fields first, then files.
func upload(t *testing.T, url string, fields map[string]string, files ...formFile) (int, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		w, err := mw.CreateFormFile(f.field, f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	mw.Close()
	return do(t, http.MethodPost, url, mw.FormDataContentType(), &body)
}

func do(t *testing.T, method, url, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	resp, b := exchange(t, method, url, contentType, body)
	return resp.StatusCode, b
}

func exchange(t *testing.T, method, url, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return testhttp.Do(t, method, url, contentType, body)
}

func images(t *testing.T, seeds ...uint64) []formFile {
	var out []formFile
	for _, s := range seeds {
		out = append(out, formFile{"images", fmt.Sprintf("ref%d.png", s), noisePNG(t, 28, 28, s)})
	}
	return out
}

func uniqueName(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }

// expect checks a response's status and decodes its JSON: expect[T](t, 200)(get(t, url)).
func expect[T any](t *testing.T, want int) func(code int, body []byte) T {
	return func(code int, body []byte) T {
		t.Helper()
		var v T
		if code != want {
			t.Fatalf("status %d, want %d: %s", code, want, body)
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return v
	}
}

func TestSubjectUploadReadyGenerateDelete(t *testing.T) {
	ts := personalizationServer(t, false, subjects.DefaultLimits())
	code, body := upload(t, ts.URL+"/v1/subjects", map[string]string{"name": uniqueName(t), "class": "bag"}, images(t, 1, 2)...)
	sub := expect[cachet.Subject](t, http.StatusCreated)(code, body)
	if sub.Status != cachet.SubjectReady || len(sub.Refs) != 2 || sub.Cache == nil || sub.Class != "bag" {
		t.Fatalf("created: %s", body)
	}
	got := expect[cachet.Subject](t, http.StatusOK)(get(t, ts.URL+"/v1/subjects/"+sub.ID))
	if got.ID != sub.ID || got.Status != cachet.SubjectReady {
		t.Fatalf("GET: %+v", got)
	}
	list := expect[api.SubjectsBody](t, http.StatusOK)(get(t, ts.URL+"/v1/subjects?limit=200"))
	if !containsSubject(list.Subjects, sub.ID) {
		t.Fatal("the new subject is not listed")
	}
	code, body = upload(t, ts.URL+"/v1/subjects", map[string]string{"name": uniqueName(t)}, images(t, 1, 2)...)
	twin := expect[cachet.Subject](t, http.StatusCreated)(code, body)
	near := expect[api.SimilarBody](t, http.StatusOK)(get(t, ts.URL+"/v1/subjects/"+sub.ID+"/similar?k=3"))
	if len(near.Subjects) != 1 || near.Subjects[0].ID != twin.ID || near.Subjects[0].Similarity < 0.9999 {
		t.Fatalf("similar: %+v", near)
	}

	// Plain text-to-image, inline and stored.
	res := expect[cachet.GenerateResult](t, http.StatusOK)(post(t, ts.URL+"/v1/generate",
		`{"prompt": "a small sneaker on the left", "n": 2, "seed": 3, "steps": 4, "cache": {"name": "fora", "params": {"interval": 2}}}`))
	if len(res.Images) != 2 || len(res.Timings.StepMS) != 4 || res.Cache.Policy != "fora" || res.Cache.Reused == 0 || res.Width != 32 {
		t.Fatalf("generate: %+v", res)
	}
	if img, err := png.Decode(bytes.NewReader(res.Images[0].PNG)); err != nil || img.Bounds().Dx() != 32 {
		t.Fatalf("inline PNG: %v", err)
	}
	stored := expect[cachet.GenerateResult](t, http.StatusOK)(post(t, ts.URL+"/v1/generate",
		`{"prompt": "a large bag", "n": 1, "steps": 2, "output": "url"}`))
	if len(stored.Images) != 1 || stored.Images[0].PNG != nil || !strings.HasPrefix(stored.Images[0].Key, "generations/") {
		t.Fatalf("stored: %+v", stored)
	}
	if stored.Guidance != cachet.DefaultGuidance || stored.CleanRenorm != cachet.DefaultCleanRenorm {
		t.Fatalf("stored: sampled with guidance %g, clean renorm %g; want the defaults", stored.Guidance, stored.CleanRenorm)
	}
	if code, data := get(t, stored.Images[0].URL); code != 200 || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("presigned URL: %d", code)
	}

	// With the subject: no adapters are loaded here, so 503 with the fix.
	code, body = post(t, ts.URL+"/v1/generate", fmt.Sprintf(`{"prompt": "a large bag", "n": 1, "steps": 2, "subject_id": %q}`, sub.ID))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "cachet train adapters") {
		t.Fatalf("generate with a subject and no adapters: %d %s", code, body)
	}

	if code, body := do(t, http.MethodDelete, ts.URL+"/v1/subjects/"+sub.ID, "", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	for _, path := range []string{"/v1/subjects/" + sub.ID, "/v1/subjects/" + sub.ID + "/similar"} {
		if code, body := get(t, ts.URL+path); code != http.StatusNotFound {
			t.Fatalf("GET %s after delete: %d %s", path, code, body)
		}
	}
	code, body = post(t, ts.URL+"/v1/generate", fmt.Sprintf(`{"prompt": "a large bag", "n": 1, "subject_id": %q}`, sub.ID))
	if code != http.StatusNotFound {
		t.Fatalf("generate with a deleted subject: %d %s", code, body)
	}
}

func containsSubject(subs []*cachet.Subject, id string) bool {
	for _, s := range subs {
		if s.ID == id {
			return true
		}
	}
	return false
}

func TestPersonalizedGenerate(t *testing.T) {
	ts := personalizationServer(t, true, subjects.DefaultLimits())
	code, body := upload(t, ts.URL+"/v1/subjects", map[string]string{"name": uniqueName(t)}, images(t, 7)...)
	sub := expect[cachet.Subject](t, http.StatusCreated)(code, body)
	req := `{"prompt": "a small coat on the right", "n": 1, "seed": 1, "steps": 3, "subject_id": %q}`
	personal := expect[cachet.GenerateResult](t, http.StatusOK)(post(t, ts.URL+"/v1/generate", fmt.Sprintf(req, sub.ID)))
	if personal.Reference == nil || personal.Reference.Tokens != 64 || !personal.Reference.CacheHit || personal.SubjectID != sub.ID {
		t.Fatalf("personalized: %+v", personal)
	}
	plain := expect[cachet.GenerateResult](t, http.StatusOK)(post(t, ts.URL+"/v1/generate", strings.Replace(req, `, "subject_id": %q`, "", 1)))
	if bytes.Equal(plain.Images[0].PNG, personal.Images[0].PNG) {
		t.Fatal("the subject changed nothing")
	}
	// The guidance forms are the same request with different branches seeing the subject.
	for _, g := range []string{"joint", "prompt", "subject"} {
		r := strings.Replace(req, `"n": 1`, `"n": 1, "reference_guidance": "`+g+`"`, 1)
		got := expect[cachet.GenerateResult](t, http.StatusOK)(post(t, ts.URL+"/v1/generate", fmt.Sprintf(r, sub.ID)))
		if same := bytes.Equal(got.Images[0].PNG, personal.Images[0].PNG); same != (g == "joint") {
			t.Errorf("reference guidance %s: same image as the default %v", g, same)
		}
	}
}

func TestSubjectAndGenerateErrors(t *testing.T) {
	limits := subjects.DefaultLimits()
	limits.MaxImageBytes, limits.MaxTotalBytes = 6000, 10000
	ts := personalizationServer(t, false, limits)
	name := map[string]string{"name": uniqueName(t)}
	var gifBuf bytes.Buffer
	small := image.NewPaletted(image.Rect(0, 0, 20, 20), []color.Color{color.Black, color.White})
	if err := gif.Encode(&gifBuf, small, nil); err != nil {
		t.Fatal(err)
	}
	big := noisePNG(t, 50, 50, 1) // ≈ 7.5 kB (3 random bytes a pixel)
	mid := noisePNG(t, 36, 36, 2) // ≈ 3.9 kB: three are over the total
	if len(big) <= 6000 || len(mid) > 6000 || 3*len(mid) <= 10000 {
		t.Fatalf("test images of %d and %d bytes do not straddle the limits", len(big), len(mid))
	}
	uploads := []struct {
		name   string
		fields map[string]string
		files  []formFile
		want   int
	}{
		{"gif", name, []formFile{{"images", "a.gif", gifBuf.Bytes()}}, http.StatusUnsupportedMediaType},
		{"text file", name, []formFile{{"images", "a.png", []byte("just some text, not an image")}}, http.StatusUnsupportedMediaType},
		{"oversized image", name, []formFile{{"images", "big.png", big}}, http.StatusRequestEntityTooLarge},
		{"oversized total", name, []formFile{{"images", "1.png", mid}, {"images", "2.png", mid}, {"images", "3.png", mid}}, http.StatusRequestEntityTooLarge},
		{"zero images", name, nil, http.StatusBadRequest},
		{"nine images", name, images(t, 1, 2, 3, 4, 5, 6, 7, 8, 9), http.StatusBadRequest},
		{"no name", nil, images(t, 1), http.StatusBadRequest},
		{"unknown class", map[string]string{"name": "x", "class": "spaceship"}, images(t, 1), http.StatusBadRequest},
		{"unknown field", map[string]string{"name": "x", "colour": "red"}, images(t, 1), http.StatusBadRequest},
	}
	for _, tc := range uploads {
		t.Run("upload "+tc.name, func(t *testing.T) {
			code, body := upload(t, ts.URL+"/v1/subjects", tc.fields, tc.files...)
			var eb api.ErrorBody
			if code != tc.want || json.Unmarshal(body, &eb) != nil || eb.Error.Message == "" {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	t.Run("upload as JSON", func(t *testing.T) {
		if code, body := post(t, ts.URL+"/v1/subjects", `{"name": "x"}`); code != http.StatusUnsupportedMediaType {
			t.Fatalf("%d %s", code, body)
		}
	})

	unknown := "00000000-0000-4000-8000-000000000000"
	reads := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/subjects/" + unknown, http.StatusNotFound},
		{"GET", "/v1/subjects/not-a-uuid", http.StatusNotFound},
		{"DELETE", "/v1/subjects/" + unknown, http.StatusNotFound},
		{"GET", "/v1/subjects/" + unknown + "/similar", http.StatusNotFound},
		{"GET", "/v1/subjects/" + unknown + "/similar?k=abc", http.StatusBadRequest},
		{"POST", "/v1/subjects/" + unknown + "/retry", http.StatusNotFound},
		{"GET", "/v1/subjects?limit=500", http.StatusBadRequest},
		{"GET", "/v1/subjects?status=bogus", http.StatusBadRequest},
	}
	for _, tc := range reads {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if code, body := do(t, tc.method, ts.URL+tc.path, "", nil); code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}

	gens := []struct {
		name, body string
		want       int
		contains   string
	}{
		{"unknown subject", `{"prompt": "a large bag", "n": 1, "subject_id": "` + unknown + `"}`, http.StatusNotFound, "no subject"},
		{"bad prompt", `{"prompt": "a purple spaceship", "n": 1}`, http.StatusBadRequest, ""},
		{"empty prompt", `{"prompt": "", "n": 1}`, http.StatusBadRequest, "prompt"},
		{"bad cache policy", `{"prompt": "a large bag", "n": 1, "cache": {"name": "warp"}}`, http.StatusBadRequest, "taylorseer"},
		{"bad cache parameter", `{"prompt": "a large bag", "n": 1, "cache": {"name": "fora", "params": {"interval": 0}}}`, http.StatusBadRequest, "interval"},
		{"negative images", `{"prompt": "a large bag", "n": -1}`, http.StatusBadRequest, "n must be"},
		{"too many images", `{"prompt": "a large bag", "n": 100}`, http.StatusBadRequest, "n must be"},
		{"bad steps", `{"prompt": "a large bag", "n": 1, "steps": 5000}`, http.StatusBadRequest, "steps"},
		{"bad guidance", `{"prompt": "a large bag", "n": 1, "guidance": -2}`, http.StatusBadRequest, "guidance"},
		{"bad guidance rescale", `{"prompt": "a large bag", "n": 1, "guidance_rescale": 1.5}`, http.StatusBadRequest, "guidance_rescale"},
		{"bad clean renorm", `{"prompt": "a large bag", "n": 1, "clean_renorm": 2}`, http.StatusBadRequest, "clean_renorm"},
		{"bad detail", `{"prompt": "a small bag on the left", "n": 1, "detail": 1.5}`, http.StatusBadRequest, "detail must be"},
		{"detail settle alone", `{"prompt": "a small bag on the left", "n": 1, "detail_settle": 0.2}`, http.StatusBadRequest, "give detail too"},
		{"bad output", `{"prompt": "a large bag", "n": 1, "output": "fax"}`, http.StatusBadRequest, "output"},
		{"bad reference guidance", `{"prompt": "a large bag", "n": 1, "subject_id": "` + unknown + `", "reference_guidance": "loud"}`, http.StatusBadRequest, "reference guidance"},
		{"reference guidance without a subject", `{"prompt": "a large bag", "n": 1, "reference_guidance": "subject"}`, http.StatusBadRequest, "subject_id"},
		{"negative guidance without a negative prompt", `{"prompt": "a large bag", "n": 1, "negative_guidance": 2}`, http.StatusBadRequest, "negative_prompt"},
		{"negative prompt, unknown word", `{"prompt": "a large bag", "n": 1, "negative_prompt": "a purple bag"}`, http.StatusBadRequest, "purple"},
		{"bad negative guidance", `{"prompt": "a large bag", "n": 1, "negative_prompt": "a large", "negative_guidance": 99}`, http.StatusBadRequest, "negative_guidance"},
		{"unknown field", `{"prompt": "a large bag", "n": 1, "colour": "red"}`, http.StatusBadRequest, "colour"},
		{"not JSON", `prompt=a large bag`, http.StatusBadRequest, "JSON"},
		{"empty body", ``, http.StatusBadRequest, "empty"},
	}
	for _, tc := range gens {
		t.Run("generate "+tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+"/v1/generate", tc.body)
			if code != tc.want || !strings.Contains(string(body), tc.contains) {
				t.Fatalf("status %d, want %d containing %q: %s", code, tc.want, tc.contains, body)
			}
		})
	}
}

func TestSubjectsAndGenerateWithoutModel(t *testing.T) {
	db, objects := testenv.DB(t), testenv.Objects(t)
	s, err := api.New(api.Options{Version: "test", Subjects: subjects.New(db, objects, nil, subjects.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	if code, body := post(t, ts.URL+"/v1/generate", `{"prompt": "a large bag", "n": 1}`); code != http.StatusServiceUnavailable {
		t.Fatalf("generate without a model: %d %s", code, body)
	}
	if code, body := upload(t, ts.URL+"/v1/subjects", map[string]string{"name": uniqueName(t)}, images(t, 1)...); code != http.StatusServiceUnavailable {
		t.Fatalf("upload without a model: %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/v1/subjects"); code != http.StatusOK {
		t.Fatalf("list without a model: %d %s", code, body)
	}
}
