package acceptance_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/scene"
)

// TestREADME runs every API example of README.md against the real binary with the shipped weights and
// checks what users would look at: every call succeeds, images are the model's 32×32 PNGs, an uploaded
// subject becomes ready, a personalized generation looks more like its reference than the same request
// without it, and the classification examples name the classes of the images they send.
func TestREADME(t *testing.T) {
	bin, services := buildBinary(t), sharedServices(t)
	srv := startServer(t, bin, append(services, "--auth", "keys")...)
	calls := runREADME(t, srv.addr, bin, services[1])
	examples := exampleImages(t)

	seen := map[string]bool{}
	var subjectRefs = map[string][]byte{} // subject id → its first reference's bytes
	var gens []generation
	for _, c := range calls {
		// curl's headers are not recorded: the media type follows from the route.
		h := http.Header{}
		switch {
		case strings.HasSuffix(c.path(), "/events"):
			h.Set("Content-Type", "text/event-stream")
		case c.path() == "/metrics":
			h.Set("Content-Type", "text/plain")
		}
		checkContract(t, c.method(), "http://"+srv.addr+c.path(), c.status, h, c.body)
		if c.status < 200 || c.status > 299 {
			t.Errorf("%v: %s", c, c.body)
			continue
		}
		switch route := c.method() + " " + routeOf(c.path()); route {
		case "POST /v1/subjects":
			seen["subject"] = true
			var sub cachet.Subject
			mustJSON(t, c, &sub)
			if sub.Status != cachet.SubjectReady || sub.Cache == nil || len(sub.Refs) == 0 {
				t.Errorf("%v: the subject is not ready with its cache and references: %s", c, c.body)
			}
			for _, f := range c.flag("-F") {
				if p, ok := strings.CutPrefix(f, "images=@"); ok && subjectRefs[sub.ID] == nil {
					subjectRefs[sub.ID] = readExample(t, p)
				}
			}
		case "POST /v1/generate":
			if c.status == http.StatusAccepted {
				seen["async job"] = true
				checkJob(t, c, cachet.JobQueued, cachet.JobRunning, cachet.JobSucceeded)
				continue
			}
			seen["generate"] = true
			var req cachet.GenerateRequest
			if err := json.Unmarshal([]byte(lastOf(c.flag("--json"))), &req); err != nil {
				t.Fatalf("%v: the README's generate body is not JSON: %v", c, err)
			}
			var res cachet.GenerateResult
			mustJSON(t, c, &res)
			switch {
			case req.Speed != "":
				seen["speed preset"] = true
				if res.Speed != req.Speed {
					t.Errorf("%v: asked for speed %q, the answer says %q", c, req.Speed, res.Speed)
				}
			case req.Steps == 0 && req.Cache.Name == "" && res.Speed != cachet.DefaultSpeed:
				t.Errorf("%v: a request naming no speed, steps or cache got speed %q, want the default %q", c, res.Speed, cachet.DefaultSpeed)
			}
			g := generation{req: req, images: decodeGenerated(t, c, res)}
			if req.SubjectID != "" {
				seen["personalized"] = true
			}
			gens = append(gens, g)
		case "POST /v1/classify":
			seen["classify"] = true
			if strings.Contains(lastOf(c.flag("--json")), `"collection"`) {
				seen["classify with a collection"] = true
			}
			checkClassify(t, c, examples)
		case "POST /v1/collections/{id}/build":
			seen["collection build"] = true
		case "GET /v1/jobs/{id}":
			seen["job"] = true
			if j := checkJob(t, c, cachet.JobSucceeded); j != nil {
				var res cachet.GenerateResult
				if err := json.Unmarshal(j.Result, &res); err != nil || len(res.Images) == 0 {
					t.Errorf("%v: a finished generate job's result has no images (%v)", c, err)
				}
			}
		case "GET /v1/jobs/{id}/events":
			seen["job events"] = true
			checkEvents(t, c)
		case "DELETE /v1/jobs/{id}":
			seen["cancel"] = true
			checkJob(t, c, cachet.JobCanceled)
		}
	}
	for _, kind := range []string{"subject", "generate", "speed preset", "personalized", "classify", "classify with a collection", "collection build",
		"async job", "job", "job events", "cancel"} {
		if !seen[kind] {
			t.Errorf("README.md has no working example of %s", kind)
		}
	}
	checkPersonalization(t, gens, subjectRefs)
}

type generation struct {
	req    cachet.GenerateRequest
	images []*image.Gray
}

var idSegment = regexp.MustCompile(`^[0-9a-f-]{36}$`)

// routeOf turns ids in a path (uuids; a job's number) into the route's placeholder.
func routeOf(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if idSegment.MatchString(p) || i > 0 && parts[i-1] == "jobs" {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

func lastOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func mustJSON(t *testing.T, c call, v any) {
	t.Helper()
	if err := json.Unmarshal(c.body, v); err != nil {
		t.Fatalf("%v: answer is not the documented JSON: %v: %s", c, err, c.body)
	}
}

// decodeGenerated checks that every image is a 32×32 PNG, inline or behind its URL.
func decodeGenerated(t *testing.T, c call, res cachet.GenerateResult) []*image.Gray {
	t.Helper()
	if len(res.Images) == 0 {
		t.Errorf("%v: no images", c)
	}
	var out []*image.Gray
	for _, im := range res.Images {
		data := im.PNG
		if im.URL != "" {
			resp, err := http.Get(im.URL)
			if err != nil {
				t.Fatalf("%v: image %d's URL: %v", c, im.Index, err)
			}
			data, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%v: image %d's URL answered %d: %v", c, im.Index, resp.StatusCode, err)
			}
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%v: image %d is not a PNG: %v", c, im.Index, err)
		}
		if b := img.Bounds(); b.Dx() != scene.CanvasSide || b.Dy() != scene.CanvasSide {
			t.Errorf("%v: image %d is %v, want 32×32", c, im.Index, b)
		}
		g, ok := img.(*image.Gray)
		if !ok {
			t.Fatalf("%v: image %d is %T, want grayscale", c, im.Index, img)
		}
		out = append(out, g)
	}
	return out
}

// exampleImages maps the content of each file under docs/examples to the class its name says
// ("coat2.png" → coat).
func exampleImages(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "docs", "examples")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[string(data)] = strings.TrimRight(strings.TrimSuffix(e.Name(), ".png"), "0123456789")
	}
	return out
}

func readExample(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatalf("the README uploads %s: %v", path, err)
	}
	return data
}

// checkClassify checks that each example image a classify call sent is answered with its class first.
func checkClassify(t *testing.T, c call, examples map[string]string) {
	t.Helper()
	var req struct {
		Images []string `json:"images"`
	}
	if err := json.Unmarshal([]byte(lastOf(c.flag("--json"))), &req); err != nil {
		t.Fatalf("%v: the README's classify body is not JSON: %v", c, err)
	}
	var res cachet.ClassifyResult
	mustJSON(t, c, &res)
	if len(res.Predictions) != len(req.Images) {
		t.Fatalf("%v: %d predictions for %d images", c, len(res.Predictions), len(req.Images))
	}
	for i, b64 := range req.Images {
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("%v: image %d is not base64: %v", c, i, err)
		}
		want, ok := examples[string(data)]
		if !ok {
			t.Errorf("%v: image %d is not one of docs/examples", c, i)
			continue
		}
		if top := res.Predictions[i].Top; len(top) == 0 || top[0].Label != want {
			t.Errorf("%v: image %d is a %s, classified %+v", c, i, want, top)
		}
	}
}

// checkPersonalization compares each personalized generation with the same request without its subject:
// the subject's images must be nearer its reference (mean squared pixel difference to the reference drawn
// as the same scene).
func checkPersonalization(t *testing.T, gens []generation, refs map[string][]byte) {
	t.Helper()
	compared := 0
	for _, with := range gens {
		if with.req.SubjectID == "" {
			continue
		}
		ref, ok := refs[with.req.SubjectID]
		if !ok {
			t.Errorf("a personalized example uses subject %s, which no README example uploaded", with.req.SubjectID)
			continue
		}
		for _, without := range gens {
			plain := with.req
			plain.SubjectID = ""
			if without.req.SubjectID != "" || without.req.Prompt != plain.Prompt || without.req.Seed != plain.Seed {
				continue
			}
			target := referenceScene(t, ref, with.req.Prompt)
			dWith, dWithout := meanDistance(with.images, target), meanDistance(without.images, target)
			t.Logf("%q: distance to the reference %.1f with the subject, %.1f without", with.req.Prompt, dWith, dWithout)
			if dWith >= dWithout {
				t.Errorf("%q: the personalized images are no nearer their reference (%.1f) than the plain ones (%.1f)", with.req.Prompt, dWith, dWithout)
			}
			compared++
		}
	}
	if compared == 0 {
		t.Error("README.md has no personalized generation next to the same request without its subject")
	}
}

// referenceScene draws the reference's item into the prompt's scene, as the model should.
func referenceScene(t *testing.T, ref []byte, prompt string) []uint8 {
	t.Helper()
	d, err := images.DefaultLimits().Decode("reference", ref)
	if err != nil {
		t.Fatal(err)
	}
	item, err := scene.Derender(&d.Canvas, scene.Canonical(0))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scene.Parse(prompt)
	if err != nil {
		t.Fatal(err)
	}
	canvas, err := scene.Render(&item, sc)
	if err != nil {
		t.Fatal(err)
	}
	return canvas[:]
}

func meanDistance(imgs []*image.Gray, target []uint8) float64 {
	var sum float64
	for _, img := range imgs {
		for i, v := range img.Pix {
			d := float64(v) - float64(target[i])
			sum += d * d
		}
	}
	return sum / float64(len(imgs)*len(target))
}

// checkJob decodes a job answer and checks its state is one of want.
func checkJob(t *testing.T, c call, want ...cachet.JobState) *cachet.Job {
	t.Helper()
	var j cachet.Job
	mustJSON(t, c, &j)
	if !slices.Contains(want, j.State) || j.ID == "" || j.Kind != cachet.JobGenerate {
		t.Errorf("%v: job %q (%s) is %s; want one of %v", c, j.ID, j.Kind, j.State, want)
		return nil
	}
	return &j
}

// checkEvents checks a job's event stream: named events in order, queued or running first, per-step
// progress while running, and one final event, succeeded.
func checkEvents(t *testing.T, c call) {
	t.Helper()
	var states []string
	lastStep := -1
	for _, line := range strings.Split(string(c.body), "\n") {
		if s, ok := strings.CutPrefix(line, "event: "); ok {
			states = append(states, s)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			var j cachet.Job
			if err := json.Unmarshal([]byte(d), &j); err != nil {
				t.Fatalf("%v: event data is not a job: %v", c, err)
			}
			if j.Progress.Step < lastStep {
				t.Errorf("%v: progress went back from step %d to %d", c, lastStep, j.Progress.Step)
			}
			lastStep = j.Progress.Step
		}
	}
	if len(states) == 0 || states[len(states)-1] != string(cachet.JobSucceeded) {
		t.Errorf("%v: events %v; want the job's states ending in succeeded", c, states)
	}
}
