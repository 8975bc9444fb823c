package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/images/imagestest"
)

func classifyServer(t *testing.T, c cachet.Classifier) *httptest.Server {
	t.Helper()
	s, err := api.New(api.Options{Version: "test", Classifier: c})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodPost, url, "application/json", strings.NewReader(body))
}

func b64(t *testing.T, img image.Image) string {
	return base64.StdEncoding.EncodeToString(imagestest.PNG(t, img))
}

func TestCollectionsAndClassify(t *testing.T) {
	ts := classifyServer(t, classifytest.Service(t, classifytest.Config()))
	name := classifytest.Name(t)
	// The random model's zero-shot logits reach tens (one was ±54), and an exact cache match adds alpha: at
	// alpha 1000 the labelled samples classify as themselves whatever model the seed gave (parallel tests
	// share libtorch's generator, so it varies).
	code, body := post(t, ts.URL+"/v1/collections", fmt.Sprintf(`{"name": %q, "labels": ["coat", "bag"], "alpha": 1000, "beta": 500}`, name))
	var col cachet.Collection
	if err := json.Unmarshal(body, &col); code != http.StatusCreated || err != nil || col.ID == "" {
		t.Fatalf("create: %d %s", code, body)
	}
	var samples []string
	for i := range 6 {
		samples = append(samples, fmt.Sprintf(`{"image": %q, "label": %q}`, b64(t, classifytest.Item(uint64(40+i))), []string{"coat", "bag"}[i%2]))
	}
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/samples", `{"samples": [`+strings.Join(samples, ",")+`]}`)
	if code != http.StatusOK {
		t.Fatalf("samples: %d %s", code, body)
	}
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/build", "")
	if err := json.Unmarshal(body, &col); code != http.StatusOK || err != nil || col.Model == nil || col.Model.Entries != 6 {
		t.Fatalf("build: %d %s", code, body)
	}
	code, body = post(t, ts.URL+"/v1/classify", fmt.Sprintf(`{"collection": %q, "images": [%q, %q], "top_k": 2}`, col.ID,
		b64(t, classifytest.Item(40)), b64(t, classifytest.Item(41))))
	var res cachet.ClassifyResult
	if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil || len(res.Predictions) != 2 {
		t.Fatalf("classify: %d %s", code, body)
	}
	if res.Predictions[0].Top[0].Label != "coat" || res.Predictions[1].Top[0].Label != "bag" || res.Method != "tip-adapter" {
		t.Fatalf("the labelled samples themselves were classified %s", body)
	}
	code, body = post(t, ts.URL+"/v1/classify", fmt.Sprintf(`{"collection": %q, "images": [%q], "rerank": "diffusion"}`, col.ID, b64(t, classifytest.Item(40))))
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"rerank":"diffusion"`)) || !bytes.Contains(body, []byte(`"diffusion_logit"`)) {
		t.Fatalf("classify with the diffusion rerank: %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/v1/collections/"+col.ID)
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"tip-adapter"`)) {
		t.Fatalf("get: %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/v1/collections")
	if code != http.StatusOK || !bytes.Contains(body, []byte(col.ID)) {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/build", `{"method": "tip-adapter", "values": "solved", "lambda": 0.5}`)
	if err := json.Unmarshal(body, &col); code != http.StatusOK || err != nil || col.Model == nil || col.Model.Values != "solved" || col.Model.Lambda != 0.5 {
		t.Fatalf("build with solved values: %d %s", code, body)
	}
	// Whitening wants a pool: six samples are refused with the reason, and TFUP builds without it.
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/build", `{"method": "tfup", "whiten": true}`)
	if code != http.StatusBadRequest || !bytes.Contains(body, []byte("whitening needs at least")) {
		t.Fatalf("whitening six samples: %d %s", code, body)
	}
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/build", `{"propagate": true}`)
	if code != http.StatusBadRequest || !bytes.Contains(body, []byte("label propagation needs at least")) {
		t.Fatalf("propagating six samples: %d %s", code, body)
	}
	code, body = post(t, ts.URL+"/v1/collections/"+col.ID+"/build", `{"method": "tfup", "whiten": false}`)
	if err := json.Unmarshal(body, &col); code != http.StatusOK || err != nil || col.Model.Method != "tfup" || col.Model.Whitening != 0 {
		t.Fatalf("TFUP build without whitening: %d %s", code, body)
	}
}

func TestClassifyAPIErrors(t *testing.T) {
	ts := classifyServer(t, classifytest.Service(t, classifytest.Config()))
	name := classifytest.Name(t)
	code, body := post(t, ts.URL+"/v1/collections", fmt.Sprintf(`{"name": %q, "labels": ["coat", "bag"]}`, name))
	var col cachet.Collection
	if err := json.Unmarshal(body, &col); code != http.StatusCreated || err != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	good := b64(t, classifytest.Item(1))
	tiny := b64(t, image.NewGray(image.Rect(0, 0, 6, 20)))
	missing := "00000000-0000-0000-0000-000000000000"
	tests := []struct {
		name, path, body string
		status           int
		code             cachet.Code
	}{
		{"no labels", "/v1/collections", `{"name": "x"}`, 400, cachet.CodeInvalidArgument},
		{"one label", "/v1/collections", `{"name": "x", "labels": ["a"]}`, 400, cachet.CodeInvalidArgument},
		{"name taken", "/v1/collections", fmt.Sprintf(`{"name": %q, "labels": ["a", "b"]}`, name), 409, cachet.CodeConflict},
		{"malformed JSON", "/v1/collections", `{"name": `, 400, cachet.CodeInvalidArgument},
		{"unknown field", "/v1/collections", `{"name": "x", "labels": ["a", "b"], "k": 3}`, 400, cachet.CodeInvalidArgument},
		{"samples: unknown collection", "/v1/collections/" + missing + "/samples", fmt.Sprintf(`{"samples": [{"image": %q}]}`, good), 404, cachet.CodeNotFound},
		{"samples: none", "/v1/collections/" + col.ID + "/samples", `{"samples": []}`, 400, cachet.CodeInvalidArgument},
		{"samples: not base64", "/v1/collections/" + col.ID + "/samples", `{"samples": [{"image": "***"}]}`, 400, cachet.CodeInvalidArgument},
		{"samples: not an image", "/v1/collections/" + col.ID + "/samples", `{"samples": [{"image": "aGVsbG8="}]}`, 415, cachet.CodeUnsupportedMedia},
		{"samples: too small", "/v1/collections/" + col.ID + "/samples", fmt.Sprintf(`{"samples": [{"image": %q}]}`, tiny), 400, cachet.CodeInvalidArgument},
		{"samples: unknown label", "/v1/collections/" + col.ID + "/samples", fmt.Sprintf(`{"samples": [{"image": %q, "label": "hat"}]}`, good), 400, cachet.CodeInvalidArgument},
		{"build: unknown collection", "/v1/collections/" + missing + "/build", "", 404, cachet.CodeNotFound},
		{"build: no samples", "/v1/collections/" + col.ID + "/build", "", 400, cachet.CodeInvalidArgument},
		{"build: unknown method", "/v1/collections/" + col.ID + "/build", `{"method": "svm"}`, 400, cachet.CodeInvalidArgument},
		{"build: unknown values", "/v1/collections/" + col.ID + "/build", `{"values": "votes"}`, 400, cachet.CodeInvalidArgument},
		{"build: negative lambda", "/v1/collections/" + col.ID + "/build", `{"method": "tip-adapter", "values": "solved", "lambda": -1}`, 400, cachet.CodeInvalidArgument},
		{"build: lambda as text", "/v1/collections/" + col.ID + "/build", `{"lambda": "big"}`, 400, cachet.CodeInvalidArgument},
		{"build: whiten as text", "/v1/collections/" + col.ID + "/build", `{"whiten": "yes"}`, 400, cachet.CodeInvalidArgument},
		{"build: propagate as text", "/v1/collections/" + col.ID + "/build", `{"propagate": 1}`, 400, cachet.CodeInvalidArgument},
		{"classify: unknown collection", "/v1/classify", fmt.Sprintf(`{"collection": %q, "images": [%q]}`, missing, good), 404, cachet.CodeNotFound},
		{"classify: unbuilt collection", "/v1/classify", fmt.Sprintf(`{"collection": %q, "images": [%q]}`, col.ID, good), 409, cachet.CodeConflict},
		{"classify: no images", "/v1/classify", `{"images": []}`, 400, cachet.CodeInvalidArgument},
		{"classify: bad image", "/v1/classify", `{"images": ["aGVsbG8="]}`, 415, cachet.CodeUnsupportedMedia},
		{"classify: bad top_k", "/v1/classify", fmt.Sprintf(`{"images": [%q], "top_k": -1}`, good), 400, cachet.CodeInvalidArgument},
		{"classify: unknown rerank", "/v1/classify", fmt.Sprintf(`{"images": [%q], "rerank": "votes"}`, good), 400, cachet.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+tc.path, tc.body)
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || code != tc.status || eb.Error.Code != tc.code || eb.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", code, body, tc.status, tc.code)
			}
		})
	}
	code, body = get(t, ts.URL+"/v1/collections/"+col.ID)
	if err := json.Unmarshal(body, &col); code != 200 || err != nil || col.Samples != 0 {
		t.Fatalf("failed uploads left samples: %d %s", code, body)
	}
}

func TestClassifyWithoutModel(t *testing.T) {
	ts := classifyServer(t, nil)
	code, body := post(t, ts.URL+"/v1/classify", `{"images": ["aGVsbG8="]}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "unavailable") {
		t.Fatalf("without a model: %d %s", code, body)
	}
}
