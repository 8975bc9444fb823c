package model_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// A halved file loads into the same model and gives nearly the same output.
func TestHalvedWeightsLoadAndAgree(t *testing.T) {
	dir := t.TempDir()
	full, half := filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "w16.safetensors")
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(4); err != nil {
			return err
		}
		m, err := model.New(textConfig(), model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Randomize(0.1); err != nil {
			return err
		}
		if err := m.Save(full, nil); err != nil {
			return err
		}
		rel, err := model.HalveWeightsFile(full, half)
		if err != nil {
			return err
		}
		if rel <= 0 || rel > 1e-3 {
			t.Errorf("largest relative rounding error %g, want (0, 2^-11]", rel)
		}
		h, f, err := model.Load(half, model.CPU)
		if err != nil {
			return err
		}
		defer h.Close()
		if f.Metadata[model.MetaStorage] != "f16" {
			t.Errorf("metadata %v", f.Metadata)
		}
		in := model.EvalInput{X: make([]float32, 64), T: []float64{500}, Prompts: []string{"a red cat"}}
		for i := range in.X {
			in.X[i] = float32(math.Sin(float64(i)))
		}
		a, err := m.Evaluate(in, nil)
		if err != nil {
			return err
		}
		b, err := h.Evaluate(in, nil)
		if err != nil {
			return err
		}
		for i := range a {
			if d := math.Abs(float64(a[i] - b[i])); d > 1e-2*max(1, math.Abs(float64(a[i]))) {
				t.Errorf("output %d: fp32 %v, fp16 %v", i, a[i], b[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.HalveWeightsFile(filepath.Join(dir, "missing.safetensors"), half); err == nil {
		t.Error("halved a missing file")
	}
}
