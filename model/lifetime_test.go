package model_test

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// rssBytes reads the process's resident set size.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// 1000 sampler steps (with guidance and every seam in use) leave no C tensor behind and RSS flat.
func TestMemoryFlatOver1000Steps(t *testing.T) {
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		m, err := model.New(textConfig(), gotch.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		captured := 0
		hooks := &model.Hooks{
			CaptureBlocks: []int{0, 1},
			Capture:       func(int, *model.Feature) error { captured++; return nil },
			Sublayer: func(_ int, _ model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
				f, err := compute(nil)
				if err != nil {
					return nil, err
				}
				return f.Clone() // the forward owns what a hook returns
			},
		}
		run := func(requests int) {
			for r := range requests {
				req := model.SampleRequest{Prompts: []string{"a red cat"}, Seed: int64(r), Steps: 50, Guidance: 2,
					Cache: everyStep{hooks}}
				if _, err := m.Sample(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
		}
		// RSS includes Go's heap, which every gotch op churns (a 100 KB struct per tensor): return it to the OS
		// before each reading so that what remains measures live memory.
		settle := func() { runtime.GC(); debug.FreeOSMemory() }
		run(2) // warm-up: allocator pools, lazily built kernels
		settle()
		tensors, rss, heap := model.LiveTensors(), rssBytes(t), model.CHeapInUse()
		run(20) // 1000 steps
		settle()
		// gotch's generated wrappers leak 32 bytes of C heap an op (an unfreed out-pointer); the model's
		// layer ops avoid them, so the C heap stays where it was.
		leaked := model.CHeapInUse() - heap
		t.Logf("C heap %+d bytes over 1000 steps", leaked)
		if leaked > 256<<10 {
			t.Errorf("the C heap grew by %d bytes over 1000 steps", leaked)
		}
		if got := model.LiveTensors(); got > tensors { // fewer is fine: finalizers of earlier garbage ran
			t.Errorf("live C tensors: %d before, %d after 1000 steps", tensors, got)
		}
		grown := rssBytes(t) - rss
		t.Logf("RSS %+.1f MiB over 1000 steps; %d captures", float64(grown)/(1<<20), captured)
		if grown > 64<<20 {
			t.Errorf("RSS grew by %.1f MiB over 1000 steps", float64(grown)/(1<<20))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// everyStep is a StepCache that always computes, through the given hooks.
type everyStep struct{ h *model.Hooks }

func (everyStep) Begin(model.Schedule) error { return nil }
func (e everyStep) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(e.h)
}
func (everyStep) End() {}

func TestSampleIsDeterministicAndCancellable(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		req := model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: 4, Steps: 6, Guidance: 2}
		a, err := m.Sample(context.Background(), req)
		if err != nil {
			return err
		}
		b, err := m.Sample(context.Background(), req)
		if err != nil {
			return err
		}
		if len(a.StepTimes) != 6 {
			t.Errorf("got %d step timings, want 6", len(a.StepTimes))
		}
		for i := range a.Pixels {
			if a.Pixels[i] != b.Pixels[i] {
				t.Fatalf("same seed, different pixel %d", i)
			}
		}
		// Image i depends on (seed, i) only: the first image alone equals the first of the pair.
		one, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a red cat"}, Seed: 4, Steps: 6, Guidance: 2})
		if err != nil {
			return err
		}
		for i := range one.Pixels {
			if d := one.Pixels[i] - a.Pixels[i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("image 0 changed with the batch: pixel %d %v vs %v", i, one.Pixels[i], a.Pixels[i])
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := m.Sample(ctx, req); err == nil || !strings.Contains(err.Error(), "canceled at step 0") {
			t.Errorf("canceled context: %v", err)
		}
		for _, bad := range []model.SampleRequest{
			{Prompts: []string{"a red zebra"}, Steps: 4},
			{Prompts: []string{"a cat"}, Steps: -1},
			{Prompts: nil, Steps: 4},
			{Prompts: []string{"a cat"}, Steps: 4, Guidance: -1},
			{Prompts: []string{"a cat"}, Steps: 4, Guidance: 4, GuidanceRescale: -0.1},
			{Prompts: []string{"a cat"}, Steps: 4, Guidance: 4, GuidanceRescale: 1.5},
		} {
			if _, err := m.Sample(context.Background(), bad); err == nil {
				t.Errorf("Sample(%+v) accepted a bad request", bad)
			}
		}
		_, err = m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a red zebra"}, Steps: 4})
		if err == nil || !strings.Contains(err.Error(), `unknown word "zebra"`) || !strings.Contains(err.Error(), "a, red, blue, cat, dog") {
			t.Errorf("unknown word error = %v", err)
		}
		return nil
	})
}

// The step-cost policies (token selections, per-token caches, reused guidance branches) leave no C tensor
// behind over many requests.
func TestStepCostPoliciesLeaveNoTensors(t *testing.T) {
	// Profiles for the 12-step requests below, sized to the model in profiled.
	profiled := func(cfg stepcache.Config, m *model.DiT) stepcache.Config {
		const steps = 12
		units := 2 * m.Cfg.Depth
		switch cfg.Name {
		case "hyca": // every solver in turn, channel by channel
			for i := range units * m.Cfg.Width {
				cfg.Calibration = append(cfg.Calibration, float64(i%5))
			}
		case "bac":
			sims := make([][]float64, units)
			for u := range sims {
				for i := range steps * steps {
					sims[u] = append(sims[u], 1/(1+float64(i%steps-i/steps)*float64(i%steps-i/steps)))
				}
			}
			cfg.Calibration = stepcache.BacCalibration(steps, sims, make([]float64, units))
		case "ertacache": // residuals that barely change: every middle step reused, rectified and shortened
			cfg.Calibration = []float64{steps}
			for i := range steps {
				cfg.Calibration = append(cfg.Calibration, 1000*(1-float64(i)/steps))
			}
			cfg.Calibration = append(cfg.Calibration, make([]float64, steps*steps)...)
			for _, v := range []float64{0.8, 0.1, 0.01} { // φ, a, b
				for range steps {
					cfg.Calibration = append(cfg.Calibration, v)
				}
			}
			cfg.Params = map[string]float64{"adjust": 1}
		}
		return cfg
	}
	for _, cfg := range []stepcache.Config{
		{Name: "toca"}, {Name: "cfgcache"}, {Name: "cachet"},
		{Name: "profilingdit", Calibration: []float64{0.9, 1.1}},
		{Name: "hyca"}, {Name: "bac"}, {Name: "ertacache"}, {Name: "asymrnr"},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			onPerturbedTextModel(t, func(m *model.DiT) error {
				cfg := profiled(cfg, m)
				run := func(requests int) {
					for r := range requests {
						policy, err := stepcache.New(cfg, m.Cfg.Depth)
						if err != nil {
							t.Fatal(err)
						}
						req := model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: int64(r), Steps: 12, Guidance: 2, Cache: policy}
						if _, err := m.Sample(context.Background(), req); err != nil {
							t.Fatal(err)
						}
						if st := policy.Stats(); st.ComputeFraction >= 1 && cfg.Name != "cfgcache" {
							t.Errorf("%s computed everything (%+v)", cfg.Name, st)
						}
					}
				}
				run(2)
				// No collection while measuring: a finalizer would free a leaked tensor and hide the leak.
				defer debug.SetGCPercent(debug.SetGCPercent(-1))
				before := model.LiveTensors()
				run(10)
				if after := model.LiveTensors(); after > before {
					t.Errorf("live C tensors: %d before, %d after 10 requests", before, after)
				}
				return nil
			})
		})
	}
}
