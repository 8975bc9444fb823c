package bench_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

func TestParseSettings(t *testing.T) {
	tests := []struct {
		in     string
		labels []string
		err    string
	}{
		{"fora:interval=3; steps=25 ;taylorseer:order=2,interval=4", []string{"fora interval=3", "25 steps", "taylorseer interval=4 order=2"}, ""},
		{"none", []string{"none"}, ""},
		{"magic:x=1", nil, "unknown cache policy"},
		{"fora:interval", nil, "not name=number"},
		{"fora:interval=0", nil, "interval must be an integer"},
		{"steps=0", nil, "steps must be an integer"},
		{" ; ", nil, "no settings"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := bench.ParseSettings(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range got {
				if s.Label() != tc.labels[i] {
					t.Errorf("setting %d: %q, want %q", i, s.Label(), tc.labels[i])
				}
			}
		})
	}
	if _, err := bench.ParseSettings(bench.DefaultSettings); err != nil {
		t.Fatalf("the default settings do not parse: %v", err)
	}
}

func TestBaselineAtInterpolatesTheFewerStepsCurve(t *testing.T) {
	r := &bench.StepCacheReport{Rows: []bench.StepCacheRow{
		{Setting: bench.Setting{Steps: 25}, SpeedUp: 2, PSNR: 40},
		{Setting: bench.Setting{Steps: 10}, SpeedUp: 5, PSNR: 31},
		{Setting: bench.Setting{Cache: stepcache.Config{Name: "fora"}}, SpeedUp: 3, PSNR: 99},
		{Setting: bench.Setting{Cache: stepcache.Config{Name: "fora"}, Steps: 20}, SpeedUp: 3, PSNR: 99}, // a policy, not a baseline
	}}
	for _, tc := range []struct{ x, want float64 }{{2, 40}, {3, 37}, {5, 31}, {1.5, math.NaN()}, {6, math.NaN()}} {
		if got := r.BaselineAt(tc.x); !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("BaselineAt(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	// Between neighbours on the frontier, not along a chord from a distant baseline: 17 steps at 3.5× and
	// 35 dB lie under the chord from 25 to 10 steps (35.5 dB there), and a dominated baseline (3×, 30 dB)
	// does not count.
	r.Rows = append(r.Rows, bench.StepCacheRow{Setting: bench.Setting{Steps: 17}, SpeedUp: 3.5, PSNR: 35},
		bench.StepCacheRow{Setting: bench.Setting{Steps: 30}, SpeedUp: 3, PSNR: 30})
	for _, tc := range []struct{ x, want float64 }{{2, 40}, {3.5, 35}, {2.75, 37.5}, {4.25, 33}} {
		if got := r.BaselineAt(tc.x); !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("BaselineAt(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

// A small random text model of the scene format runs the whole benchmark: the reference row is exact,
// the policy reports its compute, the fewer-steps row its step ratio, and the three files are written.
func TestStepCacheBenchmarkRuns(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "tiny.safetensors")
	w := model.NewWorker(false)
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(5); err != nil {
			return err
		}
		cfg := model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 8, Width: 32, Depth: 2, Heads: 2, MLPRatio: 2,
			Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(), MaxWords: 10, TextWidth: 16, TextDepth: 1}
		m, err := model.New(cfg, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Randomize(0.2); err != nil {
			return err
		}
		return m.Save(weights, nil)
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	o := bench.DefaultStepCacheOptions()
	o.Weights, o.Evaluator, o.DataDir = weights, "../weights/evaluator.safetensors", datasettest.Dir(t)
	o.Prompts, o.Steps, o.Batch, o.Repeats, o.TimingImages = 4, 6, 3, 2, 2
	if o.Settings, err = bench.ParseSettings("fora:interval=2;steps=3;fora:interval=2@4"); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.StepCache(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reference.PSNR != eval.MaxPSNR || rep.Reference.SSIM < 0.9999 || rep.Reference.ComputeFraction != 1 || rep.Reference.SpeedUp != 1 {
		t.Errorf("reference row %+v: want exact and 1×", rep.Reference)
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rep.Rows))
	}
	fora, fewer, composed := rep.Rows[0], rep.Rows[1], rep.Rows[2]
	// FORA interval 2 over 6 steps: steps 0, 2, 4 full → half the sublayer units computed.
	if fora.ComputeFraction != 0.5 || fora.Computed != 2*2*2*3/2*2 || fora.Reused != fora.Computed {
		t.Errorf("fora row %+v", fora)
	}
	if fewer.ComputeFraction != 0.5 || fewer.Label != "3 steps" {
		t.Errorf("fewer-steps row %+v", fewer)
	}
	// FORA interval 2 over 4 of the reference's 6 steps: half of two thirds.
	if math.Abs(composed.ComputeFraction-0.5*4/6) > 1e-9 || composed.Label != "fora interval=2, 4 steps" || composed.Reused == 0 {
		t.Errorf("composed row %+v", composed)
	}
	for _, r := range rep.Rows {
		if !(r.PSNR > 0 && r.PSNR < eval.MaxPSNR) || r.MedianSeconds <= 0 || r.SpeedUp <= 0 || r.ClassAccuracy < 0 || r.ClassAccuracy > 1 {
			t.Errorf("row %s: %+v", r.Label, r)
		}
	}
	out := filepath.Join(dir, "report")
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bench.StepCacheJSON, bench.StepCacheMarkdown, bench.StepCachePlot} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestStepCacheTimingOnlyOnAPreset(t *testing.T) {
	o := bench.DefaultStepCacheOptions()
	o.Preset, o.Steps, o.Repeats, o.TimingImages = "tiny", 8, 2, 2
	var err error
	if o.Settings, err = bench.ParseSettings("taylorseer:interval=3,order=1,warmup=0;steps=4"); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.StepCache(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Reference.SpeedUp != 1 || rep.Rows[1].ComputeFraction != 0.5 {
		t.Fatalf("report %+v", rep)
	}
	// Full steps 0, 3, 6 of 8 on the tiny preset's 2 blocks × 2 sublayers.
	if ts := rep.Rows[0]; ts.Computed != 3*4 || ts.Forecast+ts.Reused != 5*4 || ts.MedianSeconds <= 0 {
		t.Errorf("taylorseer row %+v", ts)
	}
	if md := rep.Table().Markdown(); !strings.Contains(md, "random weights") || strings.Contains(md, "PSNR") {
		t.Errorf("timing-only table:\n%s", md)
	}
	if _, err := bench.StepCache(context.Background(), func() bench.StepCacheOptions {
		o.Settings = []bench.Setting{{Cache: stepcache.Config{Name: "magcache"}}}
		return o
	}()); err == nil || !strings.Contains(err.Error(), "random weights") {
		t.Errorf("a calibrated policy on random weights: %v", err)
	}
}

// A DDIM preset refuses a step count its schedule cannot take before anything runs.
func TestStepCacheTimingValidatesStepsFirst(t *testing.T) {
	o := bench.DefaultStepCacheOptions()
	o.Preset = "dit-s/2"
	var err error
	if o.Settings, err = bench.ParseSettings("steps=13"); err != nil {
		t.Fatal(err)
	}
	if _, err := bench.StepCache(context.Background(), o); err == nil || !strings.Contains(err.Error(), "must divide 1000") {
		t.Fatalf("err = %v, want the DDIM step rule", err)
	}
}
