package train

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// randomBase writes a small text-conditioned base with random weights (fresh adaLN-Zero gates are zero,
// which would hide the adapters) and returns its path.
func randomBase(t *testing.T, dir string) string {
	t.Helper()
	cfg := BaseModelConfig()
	cfg.Width, cfg.Depth, cfg.Heads, cfg.TextWidth = 64, 2, 2, 32
	path := filepath.Join(dir, "base.safetensors")
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(3); err != nil {
			return err
		}
		m, err := model.New(cfg, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Randomize(0.2); err != nil {
			return err
		}
		return m.Save(path, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func smallAdapters(t *testing.T, base, dir string) AdaptersConfig {
	c := DefaultAdapters()
	c.Base = base
	c.Adapter = model.AdapterConfig{Blocks: []int{1}, Inner: 32, Heads: 2}
	c.DataDir = dataDir(t)
	c.Out = filepath.Join(dir, "adapters.safetensors")
	c.Checkpoint = filepath.Join(dir, "ckpt.safetensors")
	c.LogCSV = filepath.Join(dir, "log.csv")
	c.Steps, c.Batch, c.Warmup, c.LR, c.ValSamples, c.EMADecay = 40, 8, 5, 1e-2, 8, 0.9
	return c
}

// saveFreshAdapters writes no-op adapters of cfg for the base at basePath.
func saveFreshAdapters(t *testing.T, basePath string, cfg model.AdapterConfig, path string) {
	t.Helper()
	_, bc, err := model.ReadWeightsFile(basePath)
	if err != nil {
		t.Fatal(err)
	}
	w := model.NewWorker(false)
	defer w.Close()
	if err := w.Do(context.Background(), func() error {
		a, err := model.NewAdapters(bc, cfg, model.CPU)
		if err != nil {
			return err
		}
		defer a.Close()
		return a.Save(path, nil)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAdapterRunLowersLossAndResumesExactly(t *testing.T) {
	dir := t.TempDir()
	base := randomBase(t, dir)
	full := smallAdapters(t, base, filepath.Join(dir, "full"))
	if err := Adapters(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	l := losses(t, full.LogCSV)
	first, last := (l[0]+l[10])/2, (l[30]+l[20])/2
	if !(last < 0.95*first) {
		t.Fatalf("loss did not drop: steps 0,10 %.4f, steps 20,30 %.4f", first, last)
	}
	t.Logf("loss %.4f -> %.4f", first, last)
	// The default run reads six views of each reference, and the weights say so (adapters.Load, serving).
	if f, err := safetensors.ReadFile(full.Out); err != nil || f.Metadata[adapters.MetaViews] != "6" || f.Metadata[adapters.MetaTRef] != "10" {
		t.Fatalf("adapter metadata: %v %v", err, f.Metadata)
	}

	split := smallAdapters(t, base, filepath.Join(dir, "split"))
	split.stopAtStep = 20
	split.CheckpointEvery = time.Nanosecond // checkpoint after every step: training must go on unharmed
	if err := Adapters(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(split.Out); err == nil {
		t.Fatal("a time-boxed run wrote the final weights")
	}
	split.stopAtStep = 0
	split.Resume = true
	if err := Adapters(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	a, b := readTensors(t, full.Out), readTensors(t, split.Out)
	if _, ok := a["blocks.1.view"]; len(a) != 4*2+1 || !ok || len(a) != len(b) {
		t.Fatalf("%d and %d tensors, want 9 (q, k, v, cat × weight, bias; the view embeddings)", len(a), len(b))
	}
	requireSameTensors(t, "the resumed run against the uninterrupted one", a, b, 0)

	// --init-from starts from trained adapters (not the no-op): at a negligible learning rate the output
	// is the input.
	init := smallAdapters(t, base, filepath.Join(dir, "init"))
	init.InitFrom, init.Steps, init.Warmup, init.LR = full.Out, 2, 1, 1e-9
	if err := Adapters(context.Background(), init); err != nil {
		t.Fatal(err)
	}
	requireSameTensors(t, "--init-from's output against its input", a, readTensors(t, init.Out), 1e-5)
}

func TestAdapterRunRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	base := randomBase(t, dir)
	saveFreshAdapters(t, base, model.AdapterConfig{Blocks: []int{1}, Inner: 32, Heads: 2}, filepath.Join(dir, "narrow.safetensors"))
	tests := []struct {
		name string
		edit func(*AdaptersConfig)
	}{
		{"missing base", func(c *AdaptersConfig) { c.Base = filepath.Join(dir, "nope.safetensors") }},
		{"over the parameter cap", func(c *AdaptersConfig) { c.Adapter = model.AdapterConfig{Blocks: []int{0, 1}, Inner: 256, Heads: 2} }},
		{"block outside", func(c *AdaptersConfig) { c.Adapter.Blocks = []int{2} }},
		{"no-ref probability", func(c *AdaptersConfig) { c.NoRef = 1 }},
		{"seven reference views", func(c *AdaptersConfig) { c.Views = 7 }},
		{"no small weight", func(c *AdaptersConfig) { c.SmallWeight = 0 }},
		{"small weight not a number", func(c *AdaptersConfig) { c.SmallWeight = math.NaN() }},
		{"missing init-from", func(c *AdaptersConfig) { c.InitFrom = filepath.Join(dir, "nope-adapters.safetensors") }},
		{"init-from of another width", func(c *AdaptersConfig) {
			c.InitFrom = filepath.Join(dir, "narrow.safetensors")
			c.Adapter.Inner = 16
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := smallAdapters(t, base, filepath.Join(dir, tc.name))
			tc.edit(&c)
			if err := Adapters(context.Background(), c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRefBatchesAugmentAndAreReproducible(t *testing.T) {
	set, err := dataset.Load(dataDir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	b := NewRefBatches(set, 7, 0.1, 0.5, 1)
	x, _ := b.Batch(3, 16)
	y, _ := b.Batch(3, 16)
	if x.Prompts[0] != y.Prompts[0] || x.RefImages[2][300] != y.RefImages[2][300] || x.NoRef[5] != y.NoRef[5] {
		t.Fatal("the same batch index gave different batches")
	}
	noRef := 0
	for _, v := range x.NoRef {
		if v {
			noRef++
		}
	}
	if noRef == 0 || noRef == 16 {
		t.Fatalf("%d of 16 rows without a reference at p = 0.5", noRef)
	}
	// Erasing at p = 1 blacks out a rectangle.
	var img [scene.CanvasPixels]uint8
	for i := range img {
		img[i] = 200
	}
	rng := rand.New(rand.NewPCG(1, 2))
	Erase(rng, &img, true)
	zeros := 0
	for _, v := range img {
		if v == 0 {
			zeros++
		}
	}
	if zeros < 20 || zeros > scene.CanvasPixels/2 {
		t.Fatalf("erasing zeroed %d of %d pixels, want 2–33 %%", zeros, scene.CanvasPixels)
	}
}

func TestJitterKeepsTheBackgroundAndScalesTheSubject(t *testing.T) {
	item := [scene.ItemPixels]uint8{}
	for i := 200; i < 400; i++ {
		item[i] = uint8(100 + i%50)
	}
	changed := 0
	for seed := range uint64(20) {
		got := item
		Jitter(rand.New(rand.NewPCG(seed, 0)), &got)
		for i, v := range got {
			if (item[i] == 0) != (v == 0) {
				t.Fatalf("seed %d: pixel %d went %d → %d; the background must stay 0 and the subject stay foreground", seed, i, item[i], v)
			}
		}
		if got != item {
			changed++
		}
	}
	if changed < 15 {
		t.Fatalf("only %d of 20 jitters changed the subject", changed)
	}
}
