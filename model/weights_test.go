package model_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

func textConfig() model.Config {
	return model.Config{ImageSize: 8, Channels: 1, Patch: 2, Width: 32, Depth: 2, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: []string{"a", "red", "blue", "cat", "dog"},
		MaxWords: 4, TextWidth: 16, TextDepth: 1}
}

func TestSaveLoadReproducesOutputsBitForBit(t *testing.T) {
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(3); err != nil {
			return err
		}
		m, err := model.New(textConfig(), gotch.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		perturb(t, m) // adaLN-Zero starts as an identity: make the outputs depend on every weight
		path := filepath.Join(t.TempDir(), "w.safetensors")
		if err := m.Save(path, map[string]string{"note": "test"}); err != nil {
			return err
		}
		loaded, f, err := model.Load(path, gotch.CPU)
		if err != nil {
			return err
		}
		defer loaded.Close()
		if f.Metadata["note"] != "test" {
			t.Errorf("metadata lost: %v", f.Metadata)
		}
		req := model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: 9, Steps: 5, Guidance: 3}
		a, err := m.Sample(context.Background(), req)
		if err != nil {
			return err
		}
		b, err := loaded.Sample(context.Background(), req)
		if err != nil {
			return err
		}
		for i := range a.Pixels {
			if a.Pixels[i] != b.Pixels[i] {
				t.Fatalf("pixel %d: %v vs %v", i, a.Pixels[i], b.Pixels[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// onPerturbedTextModel runs fn on a worker with a perturbed textConfig model.
func onPerturbedTextModel(t *testing.T, fn func(m *model.DiT) error) {
	t.Helper()
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		// Seeded, so the initial weights (and every test's "already orthogonal" guard) are the same each run.
		if err := model.SetSeed(1); err != nil {
			return err
		}
		m, err := model.New(textConfig(), gotch.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		perturb(t, m)
		return fn(m)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// perturb fills every parameter with seeded noise via a save/edit/load round trip.
func perturb(t *testing.T, m *model.DiT) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.safetensors")
	if err := m.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for _, name := range slices.Sorted(maps.Keys(f.Tensors)) { // name order: the noise must not follow map order
		ten := f.Tensors[name]
		vals, _ := ten.Float32s()
		for i := range vals {
			k++
			vals[i] += 0.05 * float32((k*7919)%201-100) / 100
		}
		f.Tensors[name] = safetensors.FromFloat32(ten.Shape, vals)
	}
	data, err := safetensors.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.LoadWeights(path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIsStrict(t *testing.T) {
	dir := t.TempDir()
	m, err := model.New(textConfig(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	good := filepath.Join(dir, "good.safetensors")
	if err := m.Save(good, nil); err != nil {
		t.Fatal(err)
	}
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
		{"missing file", filepath.Join(dir, "nope.safetensors"), []string{"does not exist"}},
		{"not safetensors", junk(t, dir), []string{"is not a valid safetensors file"}},
		{"all problems at once", edit("bad.safetensors", func(g *safetensors.File) {
			delete(g.Tensors, "blocks.0.attn.qkv.weight")
			g.Tensors["blocks.9.extra"] = safetensors.FromFloat32([]int64{1}, []float32{1})
			g.Tensors["final_layer.linear.bias"] = safetensors.FromFloat32([]int64{3}, []float32{1, 2, 3})
		}), []string{"missing tensors: blocks.0.attn.qkv.weight", "unexpected tensors: blocks.9.extra", "mis-shaped tensors: final_layer.linear.bias: file [3], model [4]"}},
		{"no config", edit("nocfg.safetensors", func(g *safetensors.File) { delete(g.Metadata, model.MetaFormat) }), []string{"is not a Cachet DiT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := model.Load(tc.path, gotch.CPU)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Load = %v; want it to mention %q", err, w)
				}
			}
		})
	}
}

func junk(t *testing.T, dir string) string {
	p := filepath.Join(dir, "junk.safetensors")
	if err := os.WriteFile(p, []byte("definitely not a tensor file"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeEdited writes a copy of f, changed by fn, to path (for strict-loading tests).
func writeEdited(t *testing.T, path string, f safetensors.File, fn func(*safetensors.File)) string {
	t.Helper()
	g := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	for k, v := range f.Metadata {
		g.Metadata[k] = v
	}
	for k, v := range f.Tensors {
		g.Tensors[k] = v
	}
	fn(&g)
	data, err := safetensors.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
