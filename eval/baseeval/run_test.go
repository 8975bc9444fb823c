package baseeval_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// tinyTextConfig is a small text-conditioned model over the scene vocabulary (random weights: fast, and
// enough to exercise every step of the pipeline).
func tinyTextConfig() model.Config {
	return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 8, Width: 32, Depth: 1, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(), MaxWords: 10, TextWidth: 16, TextDepth: 1}
}

func onWorker(t testing.TB, grad bool, fn func() error) {
	t.Helper()
	w := model.NewWorker(grad)
	defer w.Close()
	if err := w.Do(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// saveModel writes a randomly initialised model of cfg to a temporary file.
func saveModel(t testing.TB, cfg model.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.safetensors")
	onWorker(t, false, func() error {
		if err := model.SetSeed(3); err != nil {
			return err
		}
		m, err := model.New(cfg, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		return m.Save(path, nil)
	})
	return path
}

// evaluatorPath is the trained evaluator when the repository has one, else a tiny classifier trained here.
func evaluatorPath(t testing.TB) string {
	t.Helper()
	if p := filepath.Join("..", "..", "weights", "evaluator.safetensors"); fileExists(p) {
		return p
	}
	test, _ := data(t)
	path := filepath.Join(t.TempDir(), "evaluator.safetensors")
	onWorker(t, true, func() error {
		if err := model.SetSeed(1); err != nil {
			return err
		}
		c, err := model.NewClassifier(model.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		tr, err := model.NewClassifierTrainer(c, 1e-3, 1e-4)
		if err != nil {
			return err
		}
		const n, batch = 320, 32
		for s := 0; s < n; s += batch {
			labels := make([]int, batch)
			for i := range labels {
				labels[i] = test.Label(s + i)
			}
			if _, err := tr.Step(test.Pixels[s*scene.ItemPixels:(s+batch)*scene.ItemPixels], labels); err != nil {
				return err
			}
		}
		return c.Save(path, nil)
	})
	return path
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// One tiny run end to end: random text model, --limit 4, 2 steps, 2 seeds, batches that split the prompts.
func TestRunEndToEndTinyModel(t *testing.T) {
	weights := saveModel(t, tinyTextConfig())
	out := filepath.Join(t.TempDir(), "report")
	cfg := baseeval.DefaultConfig()
	cfg.Weights, cfg.Evaluator, cfg.DataDir, cfg.Out = weights, evaluatorPath(t), dataDir(t), out
	cfg.Limit, cfg.Steps, cfg.Batch = 4, 2, 3
	var progress strings.Builder
	cfg.Progress = &progress
	r, err := baseeval.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("progress:\n%s", progress.String())
	t.Logf("report:\n%s", r.Markdown())
	if !strings.Contains(progress.String(), "8/8 images") || !strings.Contains(progress.String(), "ETA") {
		t.Errorf("progress lacks the final count or the ETA:\n%s", progress.String())
	}
	for _, f := range []string{baseeval.JSONFile, baseeval.MarkdownFile, baseeval.SamplesFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, baseeval.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back baseeval.Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Config.N != 8 || back.Config.Prompts != 4 || back.Generated.N != 8 || back.Real.N != 8 || len(back.Config.WeightsSHA256) != 64 {
		t.Errorf("config/N: %+v, generated N %d, real N %d", back.Config, back.Generated.N, back.Real.N)
	}
	for _, m := range []baseeval.Metrics{back.Generated, back.Real} {
		for _, e := range []eval.CounterEntry{m.Class, m.Size, m.Position, m.Inversion, m.Mirror, m.All} {
			if e.Accuracy < 0 || e.Accuracy > 1 || e.Correct > e.Total {
				t.Errorf("%s: %+v out of range", e.Name, e)
			}
		}
	}
	// The first 4 prompts are large t-shirts: no position or mirror scoring, real ones read back exactly.
	if back.Real.Size.Accuracy != 1 || back.Real.Inversion.Accuracy != 1 || back.Generated.Position.Total != 0 {
		t.Errorf("real size %.2f inversion %.2f, generated position total %d", back.Real.Size.Accuracy, back.Real.Inversion.Accuracy, back.Generated.Position.Total)
	}
	if back.Frechet.GeneratedVsReal == nil || back.Frechet.RealVsReal == nil || *back.Frechet.GeneratedVsReal < 0 || back.Frechet.N != 8 {
		t.Errorf("Fréchet: %+v", back.Frechet)
	}
}

// Noise reproduces the sampler's own seeded noise, so a prompt's image does not depend on the batching.
func TestBatchedNoiseMatchesOneRequest(t *testing.T) {
	cfg := tinyTextConfig()
	prompts := []string{"a large coat", "a small boot on the left", "a large mirrored sandal, inverted", "a small bag at the top"}
	onWorker(t, false, func() error {
		m, err := model.New(cfg, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		whole, err := m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Seed: 11, Steps: 2, Guidance: 4})
		if err != nil {
			return err
		}
		per := scene.CanvasPixels
		for _, part := range [][2]int{{0, 1}, {1, 4}} {
			res, err := m.Sample(context.Background(), model.SampleRequest{Prompts: prompts[part[0]:part[1]], Seed: 11, Steps: 2,
				Guidance: 4, Noise: baseeval.Noise(11, part[0], part[1]-part[0], per)})
			if err != nil {
				return err
			}
			if !slices.Equal(res.Pixels, whole.Pixels[part[0]*per:part[1]*per]) {
				t.Errorf("prompts %d…%d: batched images differ from the one-request images", part[0], part[1]-1)
			}
		}
		return nil
	})
}

// Bad inputs fail before any work with one line that names the flag.
func TestRunRefusesBadInputs(t *testing.T) {
	good := saveModel(t, tinyTextConfig())
	label := saveModel(t, model.Presets["tiny"])
	ev := evaluatorPath(t)
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*baseeval.Config)
		want string
	}{
		{"missing weights", func(c *baseeval.Config) { c.Weights = filepath.Join(t.TempDir(), "nope.safetensors") }, "weights: "},
		{"missing evaluator", func(c *baseeval.Config) { c.Evaluator = filepath.Join(t.TempDir(), "nope.safetensors") }, "evaluator: "},
		{"seeds 0", func(c *baseeval.Config) { c.Seeds = 0 }, "seeds: "},
		{"steps 0", func(c *baseeval.Config) { c.Steps = 0 }, "steps: "},
		{"limit -1", func(c *baseeval.Config) { c.Limit = -1 }, "limit: "},
		{"guidance rescale 2", func(c *baseeval.Config) { c.GuidanceRescale = 2 }, "guidance_rescale: "},
		{"clean renorm −0.5", func(c *baseeval.Config) { c.CleanRenorm = -0.5 }, "clean_renorm: "},
		{"guidance projection 2", func(c *baseeval.Config) { c.GuidanceProjection = 2 }, "guidance_projection: "},
		{"guide scale without guide", func(c *baseeval.Config) { c.GuideScale = 3 }, "guide_scale: needs guide"},
		{"class contrast -1", func(c *baseeval.Config) { c.ClassContrast = -1 }, "class_contrast: "},
		{"perturbed guidance -1", func(c *baseeval.Config) { c.PerturbedGuidance = -1 }, "perturbed_guidance: "},
		{"perturbed guidance without blocks", func(c *baseeval.Config) { c.PerturbedGuidance = 2 }, "needs perturbed_blocks"},
		{"zero-init every step", func(c *baseeval.Config) { c.ZeroInitSteps = c.Steps }, "zero_init_steps: "},
		{"stochastic interval reversed", func(c *baseeval.Config) { c.StochasticInterval = model.Interval{Lo: 0.8, Hi: 0.2} }, "stochastic_interval: "},
		{"guidance interval past 1", func(c *baseeval.Config) { c.GuidanceInterval = model.Interval{Lo: 0.5, Hi: 2} }, "guidance_interval: "},
		{"stochasticity 1", func(c *baseeval.Config) { c.Stochasticity = 1 }, "stochasticity: "},
		{"time shift 30", func(c *baseeval.Config) { c.TimeShift = 30 }, "time_shift: "},
		{"detail 2", func(c *baseeval.Config) { c.DetailStrength = 2 }, "detail: "},
		{"unknown cache", func(c *baseeval.Config) { c.Cache = "warp" }, "cache: warp"},
		{"calibrated cache without a profile", func(c *baseeval.Config) { c.Cache = "teacache" }, "cache: teacache"},
		{"settle without detail", func(c *baseeval.Config) { c.DetailStrength, c.DetailSettle = 0, 0.2 }, "detail_settle: needs detail"},
		{"unwritable out", func(c *baseeval.Config) { c.Out = filepath.Join(file, "sub") }, "out: "},
		{"label model", func(c *baseeval.Config) { c.Weights = label }, "text-conditioned 32×32×1"},
		{"not weights", func(c *baseeval.Config) { c.Weights = file }, "not a valid safetensors"},
	}
	for _, tc := range cases {
		cfg := baseeval.DefaultConfig()
		cfg.Weights, cfg.Evaluator, cfg.DataDir, cfg.Out = good, ev, dataDir(t), t.TempDir()
		tc.edit(&cfg)
		_, err := baseeval.Run(context.Background(), cfg)
		t.Logf("%s: %v", tc.name, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v; want one line containing %q", tc.name, err, tc.want)
		}
	}
}

// The full-size redraw composes each small item back into its scene, so even a random model's small
// items sit at the prompt's size and place; settling redraws the scene after it.
func TestRunDetailPass(t *testing.T) {
	weights := saveModel(t, tinyTextConfig())
	for _, settle := range []float64{0, 0.3} {
		cfg := baseeval.DefaultConfig()
		cfg.Weights, cfg.Evaluator, cfg.DataDir, cfg.Out = weights, evaluatorPath(t), dataDir(t), t.TempDir()
		cfg.Classes, cfg.Seeds, cfg.Steps, cfg.DetailStrength, cfg.DetailSettle = []string{"bag"}, 1, 4, 0.5, settle
		cfg.Cache = "fora:interval=2" // drafts cached, redraws not
		r, err := baseeval.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		pos := r.Generated.Position
		t.Logf("settle %g: position %d/%d", settle, pos.Correct, pos.Total)
		if pos.Total == 0 || r.Config.DetailStrength != 0.5 || r.Config.DetailSettle != settle {
			t.Fatalf("settle %g: position total %d, config %+v", settle, pos.Total, r.Config)
		}
		if settle == 0 && pos.Correct != pos.Total {
			t.Errorf("composed small items: position %d/%d, want all", pos.Correct, pos.Total)
		}
	}
}
