package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/scene"
)

// Report files `cachet bench soak` writes into its output directory.
const (
	SoakJSON     = "soak.json"
	SoakMarkdown = "soak.md"
)

// Request kinds of a soak, in report order.
const (
	SoakGenerate = "generate"
	SoakClassify = "classify"
)

// SoakOptions configure a soak: a load client for a running server whose process it watches.
type SoakOptions struct {
	URL string
	// Key is the API key the requests carry (an admin key: /metrics is read too); empty for a server with
	// keys off.
	Key string
	// PID is the server's process (same machine): its RSS is read from /proc/PID/status.
	PID                int
	Generate, Classify int // requests of each kind, warm-up included
	Concurrency        int
	Warmup             int // requests before the baseline sample
	SampleEvery        int // requests between samples under load
	Steps              int // sampler steps of a generate request
	DataDir            string
	Timeout            time.Duration // per request
	// Gates: RSS growth after warm-up (fraction), goroutines above the warm-up count, failed requests.
	MaxRSSGrowth   float64
	GoroutineSlack int
	MaxErrors      int
	Progress       io.Writer
}

// DefaultSoakOptions is `cachet bench soak` without flags.
func DefaultSoakOptions() SoakOptions {
	return SoakOptions{URL: "http://127.0.0.1:8080", Generate: 10000, Classify: 10000, Concurrency: 4, Warmup: 500,
		SampleEvery: 250, Steps: 4, DataDir: dataset.DefaultDir, Timeout: 2 * time.Minute, MaxRSSGrowth: 0.05, GoroutineSlack: 3}
}

func (o SoakOptions) validate() error {
	switch {
	case !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://"):
		return cachet.Invalid("--url must be the server's http(s) base URL, e.g. http://127.0.0.1:8080 (got %q)", o.URL)
	case o.PID <= 0:
		return cachet.Invalid("--pid must be the server's process id (got %d); e.g. pgrep -f 'cachet serve'", o.PID)
	case o.Generate < 0 || o.Classify < 0 || o.Generate+o.Classify == 0:
		return cachet.Invalid("--generate and --classify must be ≥ 0, together > 0 (got %d and %d)", o.Generate, o.Classify)
	case o.Concurrency < 1:
		return cachet.Invalid("--concurrency must be positive (got %d)", o.Concurrency)
	case o.Warmup < 0 || o.Warmup >= o.Generate+o.Classify:
		return cachet.Invalid("--warmup must be ≥ 0 and below the %d requests (got %d)", o.Generate+o.Classify, o.Warmup)
	case o.SampleEvery < 1:
		return cachet.Invalid("--sample-every must be positive (got %d)", o.SampleEvery)
	case o.Steps < 1:
		return cachet.Invalid("--steps must be positive (got %d)", o.Steps)
	case o.Timeout <= 0:
		return cachet.Invalid("--timeout must be positive (got %s)", o.Timeout)
	}
	return nil
}

type soakJob struct {
	kind string
	i    int
}

// soakSchedule interleaves the two kinds evenly, so every stretch of the run mixes them in proportion.
func soakSchedule(generate, classify int) []soakJob {
	jobs := make([]soakJob, 0, generate+classify)
	g, c := 0, 0
	for g < generate || c < classify {
		// Whichever kind is further behind its share goes next.
		if c >= classify || (g < generate && float64(g)*float64(classify) <= float64(c)*float64(generate)) {
			jobs = append(jobs, soakJob{SoakGenerate, g})
			g++
		} else {
			jobs = append(jobs, soakJob{SoakClassify, c})
			c++
		}
	}
	return jobs
}

// soakPrompts are every scene of every class, classes interleaved: small and large, mirrored, inverted.
func soakPrompts() []string {
	var out []string
	for k := range scene.AllScenes(0) {
		for c := range scene.NumClasses {
			out = append(out, scene.Format(scene.AllScenes(c)[k]))
		}
	}
	return out
}

// soakImages are n classify bodies of one PNG each from the test split: a quarter bare 28×28 items, the
// rest 32×32 scenes of every kind.
func soakImages(dir string, n int) ([][]byte, error) {
	set, err := dataset.Load(dir, dataset.Test)
	if err != nil {
		return nil, err
	}
	bodies := make([][]byte, 0, n)
	for i := range min(n, set.Len()) {
		var img *image.Gray
		if i%4 == 0 {
			img = image.NewGray(image.Rect(0, 0, scene.ItemSide, scene.ItemSide))
			copy(img.Pix, set.Image(i)[:])
		} else {
			scenes := scene.AllScenes(set.Label(i))
			canvas, err := scene.Render(set.Image(i), scenes[i%len(scenes)])
			if err != nil {
				return nil, err
			}
			img = image.NewGray(image.Rect(0, 0, scene.CanvasSide, scene.CanvasSide))
			copy(img.Pix, canvas[:])
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, fmt.Errorf("bench: encoding a soak image: %w", err)
		}
		body, err := json.Marshal(map[string][][]byte{"images": {buf.Bytes()}})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		bodies = append(bodies, body)
	}
	return bodies, nil
}

type soaker struct {
	o       SoakOptions
	client  *http.Client
	proc    procfs.Proc
	prompts []string
	images  [][]byte
	start   time.Time

	mu       sync.Mutex
	rep      *SoakReport
	kinds    map[string]*SoakKind
	answered int
	// Past warm-up, from measuredAt on after measuredFrom answers: latencies count, errors gate.
	measured     bool
	measuredAt   time.Time
	measuredFrom int
}

// Soak sends o.Generate generate and o.Classify classify requests to the server at o.URL, o.Concurrency
// at a time, and watches the server's RSS and goroutines: idle after the first o.Warmup requests, every
// o.SampleEvery requests under load, and idle at the end. Failed requests are counted, not fatal; a
// server that stops answering its metrics or vanishes ends the run with an error.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeUnavailable, err, "cannot read /proc; the soak must run on the server's machine")
	}
	proc, err := fs.Proc(o.PID)
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeNotFound, err, "no process %d on this machine; give the server's pid with --pid", o.PID)
	}
	images, err := soakImages(o.DataDir, 240)
	if err != nil {
		return nil, err
	}
	s := &soaker{
		o: o, proc: proc, prompts: soakPrompts(), images: images, start: time.Now(),
		// As many idle connections as workers: the server's per-connection goroutines stay constant.
		client: &http.Client{Timeout: o.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency, MaxIdleConns: o.Concurrency}},
		rep: &SoakReport{URL: o.URL, PID: o.PID, Concurrency: o.Concurrency, Warmup: o.Warmup, Steps: o.Steps,
			Limits:      SoakLimits{MaxRSSGrowthPercent: 100 * o.MaxRSSGrowth, GoroutineSlack: o.GoroutineSlack, MaxErrors: o.MaxErrors},
			errorCounts: map[SoakError]int{}},
		kinds: map[string]*SoakKind{SoakGenerate: {Kind: SoakGenerate}, SoakClassify: {Kind: SoakClassify}},
	}
	defer s.client.CloseIdleConnections()
	s.rep.Started = s.start.UTC()
	if s.rep.Version, err = s.version(ctx); err != nil {
		return nil, err
	}
	if _, err := s.sample(ctx, true); err != nil { // what the server holds before any request
		return nil, err
	}
	jobs := soakSchedule(o.Generate, o.Classify)
	if err := s.run(ctx, jobs[:o.Warmup]); err != nil {
		return nil, err
	}
	base, err := s.settledSample(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.measured, s.measuredAt, s.measuredFrom = true, time.Now(), s.answered
	s.mu.Unlock()
	if err := s.run(ctx, jobs[o.Warmup:]); err != nil {
		return nil, err
	}
	end, err := s.settledSample(ctx)
	if err != nil {
		return nil, err
	}
	s.finish(base, end)
	return s.rep, nil
}

// run sends jobs with o.Concurrency workers, sampling every o.SampleEvery answers, until all are answered.
func (s *soaker) run(ctx context.Context, jobs []soakJob) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	feed := make(chan soakJob)
	samples := make(chan struct{}, 1)
	var workers, sampler sync.WaitGroup
	sampler.Go(func() {
		for range samples {
			if _, err := s.sample(ctx, false); err != nil {
				cancel(err)
			}
		}
	})
	for range s.o.Concurrency {
		workers.Go(func() {
			for j := range feed {
				if s.do(ctx, j)%s.o.SampleEvery == 0 {
					select { // a sample still being taken absorbs this one
					case samples <- struct{}{}:
					default:
					}
				}
			}
		})
	}
feeding:
	for _, j := range jobs {
		select {
		case feed <- j:
		case <-ctx.Done():
			break feeding
		}
	}
	close(feed)
	workers.Wait()
	close(samples)
	sampler.Wait()
	return context.Cause(ctx)
}

// do sends one request and records it; it returns how many requests have been answered.
func (s *soaker) do(ctx context.Context, j soakJob) int {
	path, body := "/v1/classify", s.images[j.i%len(s.images)]
	if j.kind == SoakGenerate {
		path = "/v1/generate"
		body, _ = json.Marshal(cachet.GenerateRequest{Prompt: s.prompts[j.i%len(s.prompts)], N: 1, Steps: s.o.Steps, Seed: int64(j.i)})
	}
	status, code, elapsed := s.send(ctx, j.kind, s.o.URL+path, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kinds[j.kind]
	k.Requests++
	if code == "" {
		k.OK++
		if s.measured {
			k.latency = append(k.latency, float64(elapsed.Microseconds())/1000)
		}
	} else if ctx.Err() == nil { // a request cut short by the run's end is no failure of the server's
		s.rep.errorCounts[SoakError{Kind: j.kind, Status: status, Code: code, Warmup: !s.measured}]++
	}
	s.answered++
	return s.answered
}

// send posts body and judges the answer: code is empty for a 2xx answer with what was asked for, else the
// error envelope's code.
func (s *soaker) send(ctx context.Context, kind, url string, body []byte) (status int, code string, elapsed time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "bad_request", 0
	}
	req.Header.Set("Content-Type", "application/json")
	s.authorize(req)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "transport", time.Since(start)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed = time.Since(start)
	if err != nil {
		return resp.StatusCode, "transport", elapsed
	}
	if resp.StatusCode/100 != 2 {
		var env struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &env) != nil || env.Error.Code == "" {
			return resp.StatusCode, "no_envelope", elapsed
		}
		return resp.StatusCode, env.Error.Code, elapsed
	}
	var ans struct {
		Images []struct {
			PNG []byte `json:"png_base64"`
		} `json:"images"`
		Predictions []json.RawMessage `json:"predictions"`
	}
	ok := json.Unmarshal(data, &ans) == nil
	if kind == SoakGenerate {
		ok = ok && len(ans.Images) == 1 && len(ans.Images[0].PNG) > 0
	} else {
		ok = ok && len(ans.Predictions) == 1
	}
	if !ok {
		return resp.StatusCode, "bad_response", elapsed
	}
	return resp.StatusCode, "", elapsed
}

// settledSample is an idle sample once the server's goroutines held still for a second (at most 30 s):
// work the client gave up on may still run, and handlers unwind after answering, so that the warm-up and
// end readings compare like with like.
func (s *soaker) settledSample(ctx context.Context) (SoakSample, error) {
	prev := -1
	for range 30 {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return SoakSample{}, ctx.Err()
		}
		g, err := s.goroutines(ctx)
		if err != nil {
			return SoakSample{}, err
		}
		if g == prev {
			break
		}
		prev = g
	}
	return s.sample(ctx, true)
}

// sample reads the server's RSS and goroutines and records them.
func (s *soaker) sample(ctx context.Context, idle bool) (SoakSample, error) {
	st, err := s.proc.NewStatus()
	if err != nil {
		return SoakSample{}, cachet.Wrap(cachet.CodeUnavailable, err, "reading the server's RSS (pid %d): has it exited?", s.o.PID)
	}
	g, err := s.goroutines(ctx)
	if err != nil {
		return SoakSample{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := SoakSample{Requests: s.answered, Seconds: time.Since(s.start).Seconds(), RSSMiB: float64(st.VmRSS) / (1 << 20), Goroutines: g, Idle: idle}
	s.rep.Samples = append(s.rep.Samples, smp)
	if s.o.Progress != nil {
		total := s.o.Generate + s.o.Classify
		rate := ""
		if done := s.answered - s.measuredFrom; s.measured && done > 0 {
			perSecond := float64(done) / time.Since(s.measuredAt).Seconds()
			rate = fmt.Sprintf(", %.2f requests/s, %s to go", perSecond, time.Duration(float64(total-s.answered)/perSecond*1e9).Round(time.Second))
		}
		fmt.Fprintf(s.o.Progress, "soak: %d/%d requests, %.0f s, RSS %.1f MiB, %d goroutines%s\n",
			smp.Requests, total, smp.Seconds, smp.RSSMiB, g, rate)
	}
	return smp, nil
}

// version is the server's own, from /healthz.
func (s *soaker) version(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.URL+"/healthz", nil)
	if err != nil {
		return "", cachet.Wrap(cachet.CodeInvalidArgument, err, "bad --url %q", s.o.URL)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", cachet.Wrap(cachet.CodeUnavailable, err, "no server answers at %s; start one with 'cachet serve'", s.o.URL)
	}
	defer resp.Body.Close()
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return "", cachet.Errorf(cachet.CodeUnavailable, "%s/healthz answered %s, not a Cachet server's health", s.o.URL, resp.Status)
	}
	return body.Version, nil
}

// goroutines reads go_goroutines from the server's Prometheus endpoint.
func (s *soaker) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.URL+"/metrics", nil)
	if err != nil {
		return 0, cachet.Wrap(cachet.CodeInvalidArgument, err, "bad --url %q", s.o.URL)
	}
	s.authorize(req)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, cachet.Wrap(cachet.CodeUnavailable, err, "the server's /metrics did not answer")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, cachet.Errorf(cachet.CodeUnavailable, "the server's /metrics answered %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, cachet.Wrap(cachet.CodeUnavailable, err, "the server's /metrics is not Prometheus text")
	}
	f := fams["go_goroutines"]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, cachet.Errorf(cachet.CodeUnavailable, "the server's /metrics has no go_goroutines")
	}
	return int(f.GetMetric()[0].GetGauge().GetValue()), nil
}

// authorize adds the API key, when there is one.
func (s *soaker) authorize(req *http.Request) {
	if s.o.Key != "" {
		req.Header.Set("Authorization", "Bearer "+s.o.Key)
	}
}
