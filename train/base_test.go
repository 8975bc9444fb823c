package train

import (
	"context"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

func dataDir(t *testing.T) string { return datasettest.Dir(t) }

func smallConfig(t *testing.T, dir string) BaseConfig {
	c := DefaultBase()
	c.Model.Width, c.Model.Depth, c.Model.Heads, c.Model.TextWidth = 64, 2, 2, 32
	c.DataDir = dataDir(t)
	c.Out = filepath.Join(dir, "base.safetensors")
	c.Checkpoint = filepath.Join(dir, "ckpt.safetensors")
	c.LogCSV = filepath.Join(dir, "log.csv")
	c.Steps, c.Batch, c.Warmup, c.LR, c.ValSamples = 40, 16, 5, 2e-3, 8
	return c
}

func losses(t *testing.T, path string) map[int]float64 {
	t.Helper()
	return logColumn(t, path, 1)
}

// logColumn reads one column of a training log's step rows (the loss 1, its EMA 2), by step.
func logColumn(t *testing.T, path string, col int) map[int]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]float64{}
	for _, r := range rows[1:] {
		if r[1] == "" {
			continue
		}
		step, _ := strconv.Atoi(r[0])
		out[step], _ = strconv.ParseFloat(r[col], 64)
	}
	return out
}

func TestShortRunLowersLossAndResumesExactly(t *testing.T) {
	dir := t.TempDir()
	full := smallConfig(t, filepath.Join(dir, "full"))
	if err := os.MkdirAll(filepath.Join(dir, "full"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Base(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	l := losses(t, full.LogCSV)
	if !(l[30] < 0.8*l[0]) {
		t.Fatalf("loss did not drop: step 0 %.4f, step 30 %.4f", l[0], l[30])
	}
	t.Logf("loss %.4f -> %.4f", l[0], l[30])

	split := smallConfig(t, filepath.Join(dir, "split"))
	split.stopAtStep = 20
	split.CheckpointEvery = time.Nanosecond // checkpoint (and validate) after every step: training must go on unharmed
	if err := Base(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	split.stopAtStep = 0
	split.Resume = true
	if err := Base(context.Background(), split); err != nil {
		t.Fatal(err)
	}
	a, b := readTensors(t, full.Out), readTensors(t, split.Out)
	requireSameTensors(t, "the resumed run against the uninterrupted one", a, b, 0)
	// The smoothed loss goes on across the resume as well.
	if full, split := logColumn(t, full.LogCSV, 2)[30], logColumn(t, split.LogCSV, 2)[30]; full != split {
		t.Errorf("loss EMA at step 30: %v after a resume, %v uninterrupted", split, full)
	}

	// --init-from starts from trained weights (their config, not the flags'): at a negligible learning rate
	// the output is the input.
	init := smallConfig(t, filepath.Join(dir, "full"))
	init.Out, init.Checkpoint, init.LogCSV = filepath.Join(dir, "init.safetensors"), filepath.Join(dir, "init.ckpt"), filepath.Join(dir, "init.csv")
	init.InitFrom, init.Steps, init.Warmup, init.LR = full.Out, 2, 1, 1e-9
	init.Model.Width = 32 // replaced by the file's
	if err := Base(context.Background(), init); err != nil {
		t.Fatal(err)
	}
	requireSameTensors(t, "--init-from's output against its input", a, readTensors(t, init.Out), 1e-5)
	init.InitFrom = filepath.Join(dir, "nope.safetensors")
	if err := Base(context.Background(), init); err == nil || !strings.Contains(err.Error(), "init_from") {
		t.Fatalf("a missing --init-from file: %v", err)
	}
}

// requireSameTensors fails unless every tensor of want is in got with the same length and every value
// within tol (0: bit for bit).
func requireSameTensors(t *testing.T, what string, want, got map[string][]float32, tol float64) {
	t.Helper()
	for name, x := range want {
		y := got[name]
		if len(y) != len(x) {
			t.Fatalf("%s: %s has %d values, want %d", what, name, len(y), len(x))
		}
		for i := range x {
			if !(math.Abs(float64(x[i])-float64(y[i])) <= tol) {
				t.Fatalf("%s: %s[%d] is %v, want %v (tolerance %g)", what, name, i, y[i], x[i], tol)
			}
		}
	}
}

func readTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, ten := range f.Tensors {
		out[name], err = ten.Float32s()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestBatchesAreReproducible(t *testing.T) {
	set, err := dataset.Load(dataDir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatches(set, BaseModelConfig(), 7, 0.1)
	x, _ := b.Batch(3, 8)
	y, _ := b.Batch(3, 8)
	z, _ := b.Batch(4, 8)
	if x.Prompts[0] != y.Prompts[0] || x.Images[100] != y.Images[100] || x.T[0] != y.T[0] {
		t.Fatal("the same batch index gave different batches")
	}
	if x.T[0] == z.T[0] {
		t.Fatal("different batch indices gave the same times")
	}
}

// WeighSmall weighs the rows whose target is a small scene, in base and adapter batches alike; unweighted
// batches carry no weights.
func TestBatchesWeighSmallScenes(t *testing.T) {
	set, err := dataset.Load(dataDir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		batch func(w float64) (model.TrainBatch, error)
	}{
		{"base", func(w float64) (model.TrainBatch, error) {
			return NewBatches(set, BaseModelConfig(), 7, 0).WeighSmall(w).Batch(2, 16)
		}},
		{"adapters", func(w float64) (model.TrainBatch, error) {
			b, err := NewRefBatches(set, 7, 0, 0, 0).WeighSmall(w).Batch(2, 16)
			return b.TrainBatch, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, err := tc.batch(1)
			if err != nil {
				t.Fatal(err)
			}
			if plain.Weights != nil {
				t.Fatalf("unweighted batch has weights %v", plain.Weights)
			}
			b, err := tc.batch(2.5)
			if err != nil {
				t.Fatal(err)
			}
			small := 0
			for i, p := range b.Prompts {
				want := 1.0
				if strings.Contains(p, "small") {
					want = 2.5
					small++
				}
				if b.Weights[i] != want || p != plain.Prompts[i] {
					t.Errorf("row %d (%q): weight %v, want %v", i, p, b.Weights[i], want)
				}
			}
			if small == 0 || small == 16 {
				t.Fatalf("%d of 16 rows small", small)
			}
		})
	}
}

func TestBaseRejectsBadSmallWeight(t *testing.T) {
	for _, w := range []float64{0, -1, 101, math.NaN()} {
		c := smallConfig(t, t.TempDir())
		c.SmallWeight = w
		if err := Base(context.Background(), c); !errors.Is(err, &cachet.Error{Code: cachet.CodeInvalidArgument}) {
			t.Errorf("small weight %v: got %v, want invalid_argument", w, err)
		}
	}
}
