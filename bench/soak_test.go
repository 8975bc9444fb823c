package bench_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/subjects"
)

// servedAPI is the real API with real generate and classify services (random-weight models, the test
// Postgres and S3) when withModel, else the API of a server started without weights (every request 503).
func servedAPI(t *testing.T, withModel bool) string {
	t.Helper()
	opts := api.Options{Version: "test"}
	if withModel {
		stack := generatetest.New(t)
		db, objects := testenv.DB(t), testenv.Objects(t)
		subs := subjects.New(db, objects, stack.Extract, subjects.Options{})
		gen := generate.New(stack.Worker, stack.DiT, generate.Options{ModelID: stack.ModelID})
		opts.Subjects, opts.Generator = subs, generate.NewEndpoint(gen, subs, db, objects)
		opts.Classifier = classifytest.Service(t, classifytest.Config())
	}
	s, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// A small soak through HTTP against the server in this process: every field of the report is filled, and
// failed requests are counted by kind, status and code and fail the gate.
func TestSoakThroughHTTP(t *testing.T) {
	tests := []struct {
		name      string
		withModel bool
		errors    []bench.SoakError
		failure   string // in Check's error; empty: passes
	}{
		{"real services", true, nil, ""},
		{"no model", false, []bench.SoakError{
			{Kind: "classify", Status: 503, Code: "unavailable", Warmup: true, Count: 4},
			{Kind: "generate", Status: 503, Code: "unavailable", Warmup: true, Count: 4},
			{Kind: "classify", Status: 503, Code: "unavailable", Count: 20},
			{Kind: "generate", Status: 503, Code: "unavailable", Count: 20},
		}, "40 requests failed after warm-up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := bench.DefaultSoakOptions()
			o.URL, o.PID, o.DataDir = servedAPI(t, tc.withModel), os.Getpid(), datasettest.Dir(t)
			o.Generate, o.Classify, o.Warmup, o.SampleEvery = 24, 24, 8, 10
			// The test binary is client and server: its RSS and goroutines are not the server's alone, so
			// only the error gate is held here.
			o.MaxRSSGrowth, o.GoroutineSlack = 10, 1000
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := bench.Soak(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Kinds) != 2 {
				t.Fatalf("kinds = %+v, want generate and classify", rep.Kinds)
			}
			for _, k := range rep.Kinds {
				if k.Requests != 24 {
					t.Errorf("%s: %d requests, want 24", k.Kind, k.Requests)
				}
				if tc.withModel && (k.OK != 24 || !(0 < k.P50 && k.P50 <= k.P95 && k.P95 <= k.P99 && k.P99 <= k.Max)) {
					t.Errorf("%s: ok %d of 24, latency p50 %.1f p95 %.1f p99 %.1f max %.1f ms", k.Kind, k.OK, k.P50, k.P95, k.P99, k.Max)
				}
			}
			if len(rep.Errors) != len(tc.errors) {
				t.Fatalf("errors = %+v, want %+v", rep.Errors, tc.errors)
			}
			for i, e := range tc.errors {
				if rep.Errors[i] != e {
					t.Errorf("errors[%d] = %+v, want %+v", i, rep.Errors[i], e)
				}
			}
			// One reading before, after warm-up and at the end, plus one every 10 requests under load (some
			// may be absorbed by one still being taken).
			if n := len(rep.Samples); n < 4 || n > 7 {
				t.Errorf("%d samples, want 4…7: %+v", n, rep.Samples)
			}
			if rep.RSS.WarmupMiB <= 0 || rep.RSS.EndMiB <= 0 || rep.RSS.MaxMiB < rep.RSS.EndMiB ||
				rep.Goroutines.Warmup <= 0 || rep.Goroutines.End <= 0 || rep.Goroutines.Max < rep.Goroutines.End {
				t.Errorf("rss %+v, goroutines %+v", rep.RSS, rep.Goroutines)
			}
			err = rep.Check()
			if tc.failure == "" && err != nil || tc.failure != "" && (err == nil || !strings.Contains(err.Error(), tc.failure)) {
				t.Errorf("Check() = %v, want %q", err, tc.failure)
			}

			dir := t.TempDir()
			if err := rep.Write(dir); err != nil {
				t.Fatal(err)
			}
			md, err := os.ReadFile(filepath.Join(dir, bench.SoakMarkdown))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Version != "test" {
				t.Errorf("server version %q, want the API's \"test\"", rep.Version)
			}
			for _, want := range []string{"Soak: requests and latency", "RSS MiB", "goroutines", "RSS over requests"} {
				if !strings.Contains(string(md), want) {
					t.Errorf("soak.md lacks %q:\n%s", want, md)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, bench.SoakJSON)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSoakJudge(t *testing.T) {
	limits := bench.SoakLimits{MaxRSSGrowthPercent: 5, GoroutineSlack: 3, MaxErrors: 0}
	tests := []struct {
		name          string
		growth, trend float64
		goroutines    [2]int
		failed        int
		want          []string
	}{
		{"steady", 4.9, 3, [2]int{20, 23}, 0, nil},
		{"RSS grew", 5.1, 6, [2]int{20, 20}, 0, []string{"RSS grew 5.1 %"}},
		{"one high end reading", 9, 1, [2]int{20, 20}, 0, nil},
		{"one low warm-up reading", 2, 8, [2]int{20, 20}, 0, nil},
		{"goroutines leaked", -1, 0, [2]int{20, 24}, 0, []string{"goroutines grew from 20 to 24"}},
		{"requests failed", 0, 0, [2]int{20, 20}, 2, []string{"2 requests failed after warm-up"}},
		{"everything", 12, 10, [2]int{20, 90}, 1, []string{"RSS grew", "goroutines grew", "1 requests failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &bench.SoakReport{Limits: limits, RSS: bench.SoakRSS{GrowthPercent: tc.growth, TrendGrowthPercent: tc.trend},
				Goroutines: bench.SoakGoroutines{Warmup: tc.goroutines[0], End: tc.goroutines[1]}}
			// Failures during warm-up are shown, never gated.
			r.Errors = []bench.SoakError{{Kind: "classify", Status: 0, Code: "transport", Warmup: true, Count: 7}}
			if tc.failed > 0 {
				r.Errors = append(r.Errors, bench.SoakError{Kind: "generate", Status: 500, Code: "internal", Count: tc.failed})
			}
			r.Judge()
			if r.Passed != (len(tc.want) == 0) || len(r.Failures) != len(tc.want) {
				t.Fatalf("passed %v, failures %q; want %q", r.Passed, r.Failures, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(r.Failures[i], w) {
					t.Errorf("failure %d = %q, want it to start %q", i, r.Failures[i], w)
				}
			}
			if err := r.Check(); (err == nil) != r.Passed {
				t.Errorf("Check() = %v with passed %v", err, r.Passed)
			}
		})
	}
}

func TestSoakValidates(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*bench.SoakOptions)
		want   string
	}{
		{"no scheme", func(o *bench.SoakOptions) { o.URL = "127.0.0.1:8080" }, "--url must be"},
		{"no pid", func(o *bench.SoakOptions) { o.PID = 0 }, "--pid must be"},
		{"no requests", func(o *bench.SoakOptions) { o.Generate, o.Classify = 0, 0 }, "together > 0"},
		{"warm-up too long", func(o *bench.SoakOptions) { o.Generate, o.Classify, o.Warmup = 5, 5, 10 }, "--warmup must be"},
		{"no workers", func(o *bench.SoakOptions) { o.Concurrency = 0 }, "--concurrency"},
		{"no such process", func(o *bench.SoakOptions) { o.PID = 1 << 30 }, "no process"},
		{"no server", func(o *bench.SoakOptions) { o.URL = "http://127.0.0.1:1" }, "no server answers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := bench.DefaultSoakOptions()
			o.PID = os.Getpid()
			tc.mutate(&o)
			_, err := bench.Soak(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Soak() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
