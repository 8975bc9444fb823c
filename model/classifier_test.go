package model_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// clsOnWorker runs fn on a fresh worker (gradients as grad says) and fails the test on its error.
func clsOnWorker(t testing.TB, grad bool, fn func() error) {
	t.Helper()
	w := model.NewWorker(grad)
	defer w.Close()
	if err := w.Do(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

var (
	clsFashionOnce sync.Once
	clsFashionSets [2]*dataset.Set
	clsFashionErr  error
)

// clsFashion loads both splits once per test binary (decompressing 70k items takes a moment).
func clsFashion(t testing.TB) (train, test *dataset.Set) {
	t.Helper()
	clsFashionOnce.Do(func() {
		if clsFashionSets[0], clsFashionErr = dataset.Load(dataset.DefaultDir, dataset.Train); clsFashionErr == nil {
			clsFashionSets[1], clsFashionErr = dataset.Load(dataset.DefaultDir, dataset.Test)
		}
	})
	if clsFashionErr != nil {
		t.Fatalf("%v (run 'make toolchain')", clsFashionErr)
	}
	return clsFashionSets[0], clsFashionSets[1]
}

// clsSlice returns items [from, from+n) of s as flat pixels and labels.
func clsSlice(s *dataset.Set, from, n int) ([]uint8, []int) {
	labels := make([]int, n)
	for i := range n {
		labels[i] = s.Label(from + i)
	}
	return s.Pixels[from*scene.ItemPixels : (from+n)*scene.ItemPixels], labels
}

func TestClassifierTrainingLowersLossAndBeatsChance(t *testing.T) {
	train, test := clsFashion(t)
	const nTrain, nTest, batch, epochs = 400, 300, 40, 3
	trainPix, trainLab := clsSlice(train, 0, nTrain)
	testPix, testLab := clsSlice(test, 0, nTest)
	clsOnWorker(t, true, func() error {
		if err := model.SetSeed(1); err != nil {
			return err
		}
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		tr, err := model.NewClassifierTrainer(c, 1e-3, 1e-4)
		if err != nil {
			return err
		}
		var losses []float64
		for range epochs {
			for s := 0; s < nTrain; s += batch {
				l, err := tr.Step(trainPix[s*scene.ItemPixels:(s+batch)*scene.ItemPixels], trainLab[s:s+batch])
				if err != nil {
					return err
				}
				losses = append(losses, l)
			}
		}
		k := len(losses) / 6
		first, last := clsMean(losses[:k]), clsMean(losses[len(losses)-k:])
		t.Logf("loss: first %d steps %.3f, last %d steps %.3f", k, first, k, last)
		if !(last < 0.6*first) {
			t.Errorf("training did not lower the loss enough: %.3f → %.3f", first, last)
		}
		pred, probs, err := c.Predict(testPix, 64)
		if err != nil {
			return err
		}
		right := 0
		for i, p := range pred {
			if p == testLab[i] {
				right++
			}
			sum := 0.0
			for _, q := range probs[i] {
				sum += q
			}
			if sum < 0.999 || sum > 1.001 {
				t.Fatalf("item %d: probabilities sum to %v", i, sum)
			}
		}
		acc := float64(right) / nTest
		t.Logf("held-out accuracy after %d items × %d epochs: %.3f (chance 0.1)", nTrain, epochs, acc)
		if acc < 0.5 {
			t.Errorf("held-out accuracy %.3f does not clearly beat chance (0.1)", acc)
		}
		return nil
	})
}

func clsMean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// clsItems are n deterministic pseudo-random items (the bit-for-bit tests need no real data).
func clsItems(n int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, 2))
	px := make([]uint8, n*model.ClassifierPixels)
	for i := range px {
		px[i] = uint8(rng.IntN(256))
	}
	return px
}

func TestClassifierSaveLoadReproducesLogitsBitForBit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	items := clsItems(37, 1) // not a multiple of the batch: the last chunk is short
	clsOnWorker(t, false, func() error {
		if err := model.SetSeed(5); err != nil {
			return err
		}
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Save(path, map[string]string{"note": "test"}); err != nil {
			return err
		}
		loaded, f, err := model.LoadClassifier(path, gotch.CPU)
		if err != nil {
			return err
		}
		defer loaded.Close()
		if f.Metadata["note"] != "test" || f.Metadata[model.MetaFormat] != "classifier-v1" {
			t.Errorf("metadata: %v", f.Metadata)
		}
		a, err := c.Logits(items, 16)
		if err != nil {
			return err
		}
		b, err := loaded.Logits(items, 16)
		if err != nil {
			return err
		}
		if len(a) != 37 || len(b) != 37 || len(a[0]) != model.ClassifierClasses {
			t.Fatalf("logits shape: %d×%d", len(a), len(a[0]))
		}
		for i := range a {
			for k := range a[i] {
				if a[i][k] != b[i][k] {
					t.Fatalf("item %d class %d: %v vs %v", i, k, a[i][k], b[i][k])
				}
			}
		}
		// Batching must not change the answer beyond float noise, and features must match too.
		fa, err := c.Features(items, 0)
		if err != nil {
			return err
		}
		fb, err := loaded.Features(items, 5)
		if err != nil {
			return err
		}
		if len(fa[36]) != model.ClassifierFeatures {
			t.Fatalf("feature width %d", len(fa[36]))
		}
		for i := range fa {
			for k := range fa[i] {
				if d := fa[i][k] - fb[i][k]; d > 1e-4 || d < -1e-4 {
					t.Fatalf("item %d feature %d: %v vs %v", i, k, fa[i][k], fb[i][k])
				}
			}
		}
		// A loaded classifier trains further once made trainable.
		if err := loaded.SetTrainable(true); err != nil {
			return err
		}
		tr, err := model.NewClassifierTrainer(loaded, 1e-2, 0)
		if err != nil {
			return err
		}
		if _, err := tr.Step(items[:4*model.ClassifierPixels], []int{0, 1, 2, 3}); err != nil {
			return err
		}
		if after, err := loaded.Logits(items[:model.ClassifierPixels], 1); err != nil {
			return err
		} else if after[0][0] == a[0][0] {
			t.Errorf("a training step on the loaded classifier changed nothing")
		}
		return nil
	})
}

func TestClassifierLoadIsStrict(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	dit := filepath.Join(dir, "dit.safetensors")
	clsOnWorker(t, false, func() error {
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Save(good, nil); err != nil {
			return err
		}
		m, err := model.New(textConfig(), gotch.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		return m.Save(dit, nil)
	})
	f, err := safetensors.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, fn func(*safetensors.File)) string {
		return writeEdited(t, filepath.Join(dir, name), f, fn)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"DiT weights", dit, []string{`is not a Cachet classifier (metadata cachet.format = "dit-v1", want "classifier-v1")`}},
		{"missing file", filepath.Join(dir, "nope.safetensors"), []string{"do not exist", "cachet train evaluator"}},
		{"not safetensors", junk(t, dir), []string{"not a valid safetensors file"}},
		{"other architecture", edit("arch.safetensors", func(g *safetensors.File) {
			g.Metadata[model.MetaClassifier] = `{"features":512}`
		}), []string{"different architecture"}},
		{"tensor problems", edit("bad.safetensors", func(g *safetensors.File) {
			delete(g.Tensors, "conv2.weight")
			g.Tensors["fc3.weight"] = safetensors.FromFloat32([]int64{1}, []float32{1})
			g.Tensors["fc2.bias"] = safetensors.FromFloat32([]int64{3}, []float32{1, 2, 3})
		}), []string{"missing tensors: conv2.weight", "unexpected tensors: fc3.weight", "mis-shaped tensors: fc2.bias: file [3], model [10]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			clsOnWorker(t, false, func() error {
				var c *model.Classifier
				c, _, err = model.LoadClassifier(tc.path, gotch.CPU)
				if c != nil {
					c.Close()
				}
				return nil
			})
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("LoadClassifier = %v; want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestClassifierRejectsBadInput(t *testing.T) {
	clsOnWorker(t, true, func() error {
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Logits(make([]uint8, 100), 8); err == nil || !strings.Contains(err.Error(), "multiple of 784") {
			t.Errorf("Logits(100 bytes) = %v", err)
		}
		tr, err := model.NewClassifierTrainer(c, 1e-3, 0)
		if err != nil {
			return err
		}
		if _, err := tr.Step(clsItems(2, 3), []int{0, 10}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("Step(label 10) = %v", err)
		}
		if _, err := tr.Step(clsItems(2, 3), []int{0}); err == nil || !strings.Contains(err.Error(), "1 labels for 2 items") {
			t.Errorf("Step(1 label, 2 items) = %v", err)
		}
		return nil
	})
}

func TestClassifierInferenceKeepsTensorCountFlat(t *testing.T) {
	items := clsItems(6, 4)
	clsOnWorker(t, false, func() error {
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		run := func() error {
			if _, _, err := c.Predict(items, 4); err != nil { // two chunks per call
				return err
			}
			_, err := c.Features(items, 4)
			return err
		}
		if err := run(); err != nil { // warm-up: anything allocated once is not a leak
			return err
		}
		before := model.LiveTensors()
		for range 50 {
			if err := run(); err != nil {
				return err
			}
		}
		if after := model.LiveTensors(); after > before { // fewer is fine: finalizers of other tests' garbage ran
			t.Errorf("live C tensors went from %d to %d over 50 Predict+Features calls", before, after)
		}
		return nil
	})
}

// BenchmarkClassifierStep measures training throughput (one 128-item AdamW step per iteration).
func BenchmarkClassifierStep(b *testing.B) {
	items := clsItems(128, 6)
	labels := make([]int, 128)
	for i := range labels {
		labels[i] = i % model.ClassifierClasses
	}
	clsOnWorker(b, true, func() error {
		c, err := model.NewClassifier(gotch.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		tr, err := model.NewClassifierTrainer(c, 1e-3, 0)
		if err != nil {
			return err
		}
		b.ResetTimer()
		for range b.N {
			if _, err := tr.Step(items, labels); err != nil {
				return err
			}
		}
		b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "samples/s")
		return nil
	})
}
