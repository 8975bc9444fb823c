package model_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet/model"
)

// The smoke tests prove the gotch/libtorch build end to end: forward, backward, AdamW, save/load,
// threads and seeding all work in the binary CI builds.

func randn(t *testing.T, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.Randn(shape, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values(t *testing.T, x *ts.Tensor) []float32 {
	t.Helper()
	v, err := model.Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSeedIsDeterministic(t *testing.T) {
	draw := func(seed int64) []float32 {
		if err := model.SetSeed(seed); err != nil {
			t.Fatal(err)
		}
		x := randn(t, 8)
		defer x.Drop()
		return values(t, x)
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed gave different values at %d: %v vs %v", i, a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("different seeds gave identical values")
	}
}

func TestThreadCount(t *testing.T) {
	orig := model.NumThreads()
	defer model.SetNumThreads(orig)
	for _, n := range []int{1, 2} {
		t.Run("threads", func(t *testing.T) {
			if err := model.SetNumThreads(n); err != nil {
				t.Fatal(err)
			}
			if got := model.NumThreads(); got != n {
				t.Fatalf("NumThreads() = %d, want %d", got, n)
			}
		})
	}
}

func tinyBatch(n int, seed uint64) model.TrainBatch {
	rng := rand.New(rand.NewPCG(seed, 1))
	cfg := model.Presets["tiny"]
	per := cfg.Channels * cfg.ImageSize * cfg.ImageSize
	b := model.TrainBatch{Images: make([]float32, n*per), Noise: make([]float32, n*per), Labels: make([]int, n), Null: make([]bool, n), T: make([]float64, n)}
	for i := range n {
		b.Labels[i] = i % cfg.NumClasses
		b.T[i] = rng.Float64()
		for k := range per { // class c: a constant image at level c−1
			b.Images[i*per+k] = float32(b.Labels[i] - 1)
			b.Noise[i*per+k] = float32(rng.NormFloat64())
		}
	}
	return b
}

func TestTrainStepSaveLoad(t *testing.T) {
	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	if err := model.SetSeed(1); err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Presets["tiny"], gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tr, err := model.NewTrainer(m, model.TrainerConfig{LR: 3e-3, Beta1: 0.9, Beta2: 0.999, WeightDecay: 0.01, EMADecay: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	batch := tinyBatch(12, 3)
	first, err := tr.Step(batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := model.LiveTensors()
	var last float64
	for range 150 {
		if last, err = tr.Step(batch, 1); err != nil {
			t.Fatal(err)
		}
	}
	if after := model.LiveTensors(); after > before { // fewer is fine: finalizers of earlier garbage ran
		t.Errorf("live C tensors grew over 150 training steps: %d -> %d", before, after)
	}
	if !(last < first/3) {
		t.Fatalf("AdamW did not fit: loss %.4f -> %.4f", first, last)
	}
	t.Logf("flow loss %.4f -> %.4f", first, last)

	path := filepath.Join(t.TempDir(), "tiny.ot")
	if err := m.VS.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := model.New(model.Presets["tiny"], gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if err := loaded.VS.Load(path); err != nil {
		t.Fatal(err)
	}
	sample := func(m *model.DiT) []float32 {
		res, err := m.Sample(context.Background(), model.SampleRequest{Labels: []int{0, 1, 2}, Seed: 5, Steps: 4, Guidance: 2})
		if err != nil {
			t.Fatal(err)
		}
		return res.Pixels
	}
	want, got := sample(m), sample(loaded)
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("loaded model differs at %d: %v vs %v", i, got[i], want[i])
		}
	}
}
