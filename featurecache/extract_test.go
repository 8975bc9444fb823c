package featurecache_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
)

// randomModel is a small text-conditioned DiT with random weights on its own worker.
func randomModel(t *testing.T) (*model.Worker, *model.DiT) {
	return randomModelOf(t, 8, 2)
}

// randomModelOf is randomModel for side×side images cut into patch×patch tokens.
func randomModelOf(t *testing.T, side, patch int) (*model.Worker, *model.DiT) {
	t.Helper()
	cfg := model.Config{ImageSize: side, Channels: 1, Patch: patch, Width: 32, Depth: 3, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: []string{"a", "shirt", "bag"},
		MaxWords: 4, TextWidth: 16, TextDepth: 1}
	w := model.NewWorker(false)
	t.Cleanup(w.Close)
	var m *model.DiT
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(7); err != nil {
			return err
		}
		var err error
		if m, err = model.New(cfg, model.CPU); err != nil {
			return err
		}
		return m.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) })
	return w, m
}

func randomImages(n, per int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, per)
		for j := range out[i] {
			out[i][j] = float32(rng.Float64()*2 - 1)
		}
	}
	return out
}

func TestExtractIsPerImageAndBatchInvariant(t *testing.T) {
	w, m := randomModel(t)
	cfg := featurecache.DefaultConfig(m)
	cfg.MaxBatch = 2 // three images → two forwards
	e, err := featurecache.NewExtractor(w, m, "test-model", cfg)
	if err != nil {
		t.Fatal(err)
	}
	imgs := randomImages(3, e.ImagePixels(), 1)
	all, err := e.Extract(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("got %d caches, want 3", len(all))
	}
	for i, img := range imgs {
		one, err := e.Extract(context.Background(), [][]float32{img})
		if err != nil {
			t.Fatal(err)
		}
		f := all[i]
		if f.Model != "test-model" || f.Tokens != 16 || f.Width != 32 || len(f.Data) != 3 || f.Bytes() != 3*16*32*4 {
			t.Fatalf("cache %d: model %q, %d tokens × %d, %d blocks", i, f.Model, f.Tokens, f.Width, len(f.Data))
		}
		for b := range f.Data {
			for j, v := range f.Data[b] {
				// Batched matmuls may sum in another order (BLAS blocking): allow float32 rounding, amplified through
				// three blocks, relative to the value.
				if d := math.Abs(float64(v - one[0].Data[b][j])); d > 1e-4*max(1, math.Abs(float64(v))) {
					t.Fatalf("image %d block %d: batched and single extraction differ by %g", i, b, d)
				}
			}
		}
	}
	// Different images give different features; the pooled vector is unit length.
	p0, err := all[0].Pooled([]int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := all[1].Pooled([]int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	var norm, dot float64
	for i := range p0 {
		norm += float64(p0[i] * p0[i])
		dot += float64(p0[i] * p1[i])
	}
	if math.Abs(norm-1) > 1e-4 || len(p0) != 64 {
		t.Fatalf("pooled vector: %d values, norm² %v", len(p0), norm)
	}
	if dot > 0.99999 {
		t.Fatalf("two different images pooled to the same vector (cos %v)", dot)
	}
}

func TestExtractorRejectsBadInput(t *testing.T) {
	w, m := randomModel(t)
	tests := []struct {
		name string
		cfg  featurecache.Config
	}{
		{"no blocks", featurecache.Config{TRef: 10, MaxBatch: 1}},
		{"block outside", featurecache.Config{Blocks: []int{0, 3}, TRef: 10, MaxBatch: 1}},
		{"unsorted", featurecache.Config{Blocks: []int{1, 0}, TRef: 10, MaxBatch: 1}},
		{"t_ref", featurecache.Config{Blocks: []int{0}, TRef: -1, MaxBatch: 1}},
		{"batch", featurecache.Config{Blocks: []int{0}, TRef: 10}},
		{"views", featurecache.Config{Blocks: []int{0}, TRef: 10, MaxBatch: 1, Views: 7}},
		{"small view of an 8×8 model", featurecache.Config{Blocks: []int{0}, TRef: 10, MaxBatch: 1, Views: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := featurecache.NewExtractor(w, m, "x", tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	e, err := featurecache.NewExtractor(w, m, "x", featurecache.DefaultConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Extract(context.Background(), [][]float32{make([]float32, 5)}); err == nil {
		t.Fatal("accepted an image of the wrong size")
	}
}

// The extraction pass stops before its last block, yet its features are the block inputs a full forward
// captures (both when the last block is the model's last and when it is not).
func TestExtractEqualsAFullForwardsCapture(t *testing.T) {
	w, m := randomModel(t)
	imgs := randomImages(2, 64, 3)
	for _, blocks := range [][]int{{1}, {0, 2}, {1, 2}} {
		cfg := featurecache.DefaultConfig(m)
		cfg.Blocks = blocks
		e, err := featurecache.NewExtractor(w, m, "test-model", cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Extract(context.Background(), imgs)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int][]float32{}
		err = w.Do(context.Background(), func() error {
			x := append(append([]float32{}, imgs[0]...), imgs[1]...)
			in := model.EvalInput{X: x, T: []float64{cfg.TRef, cfg.TRef}, Null: []bool{true, true}, Prompts: []string{"", ""}}
			_, err := m.Evaluate(in, &model.Hooks{CaptureBlocks: blocks, Capture: func(block int, h *model.Feature) error {
				v, err := h.Values()
				want[block] = v
				return err
			}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for k, b := range blocks {
			for i := range imgs {
				row := want[b][i*16*32 : (i+1)*16*32]
				for j, v := range got[i].Data[k] {
					if d := math.Abs(float64(v - row[j])); d > 1e-5*max(1, math.Abs(float64(v))) {
						t.Fatalf("blocks %v: image %d block %d value %d: %g, the full forward's %g", blocks, i, b, j, v, row[j])
					}
				}
			}
		}
	}
}
