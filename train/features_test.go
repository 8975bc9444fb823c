package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

// smallFeatures distils a small random-weight teacher (3 blocks; features at block 2's input).
func smallFeatures(t *testing.T, dir string) FeaturesConfig {
	t.Helper()
	mc := smallConfig(t, dir).Model
	mc.Depth = 3
	teacher := filepath.Join(dir, "teacher.safetensors")
	w := model.NewWorker(false)
	defer w.Close()
	if err := w.Do(context.Background(), func() error {
		m, err := model.New(mc, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		return m.Save(teacher, nil)
	}); err != nil {
		t.Fatal(err)
	}
	c := DefaultFeatures()
	c.DataDir, c.Teacher, c.Block = dataDir(t), teacher, 2
	c.Out, c.Checkpoint, c.LogCSV = filepath.Join(dir, "features.safetensors"), filepath.Join(dir, "features.ckpt"), filepath.Join(dir, "features.csv")
	c.Steps, c.Batch, c.Warmup, c.LR, c.ValSamples = 40, 8, 4, 2e-3, 8
	return c
}

func TestFeaturesLowerTheLossAndResume(t *testing.T) {
	dir := t.TempDir()
	c := smallFeatures(t, dir)
	c.stopAtStep = 20
	if err := Features(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a stopped run wrote its weights: %v", err)
	}
	c.stopAtStep, c.Resume = 0, true
	if err := Features(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	l := logColumn(t, c.LogCSV, 2) // the loss EMA, carried across the resume
	if !(l[35] < 0.8*l[0]) || l[0] <= 0 {
		t.Fatalf("the smoothed loss did not drop: step 0 %.4f, step 35 %.4f", l[0], l[35])
	}
	t.Logf("loss EMA %.4f -> %.4f", l[0], l[35])
	f, err := safetensors.ReadFile(c.Out)
	if err != nil {
		t.Fatal(err)
	}
	teacherID, err := featurecache.WeightsID(c.Teacher)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["train.step"] != "40" || f.Metadata["features.block"] != "2" || f.Metadata["train.teacher"] != c.Teacher || f.Metadata[classify.TeacherKey] != teacherID {
		t.Errorf("metadata: %v", f.Metadata)
	}
}

func TestFeaturesConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good := smallFeatures(t, dir)
	for _, tc := range []struct {
		field string
		edit  func(*FeaturesConfig)
	}{
		{"teacher", func(c *FeaturesConfig) { c.Teacher = "" }},
		{"teacher", func(c *FeaturesConfig) { c.Teacher = filepath.Join(dir, "none.safetensors") }},
		{"init_from", func(c *FeaturesConfig) { c.InitFrom = filepath.Join(dir, "none.safetensors") }},
		{"block", func(c *FeaturesConfig) { c.Block = 3 }},
		{"block", func(c *FeaturesConfig) { c.Block = 0 }},
		{"t_ref", func(c *FeaturesConfig) { c.TRef = 1001 }},
		{"max_turn", func(c *FeaturesConfig) { c.Warps.MaxTurn = 90 }},
		{"max_scale", func(c *FeaturesConfig) { c.Warps.MaxScale = -0.1 }},
		{"max_shift", func(c *FeaturesConfig) { c.Warps.MaxShift = 7 }},
		{"max_noise", func(c *FeaturesConfig) { c.Warps.MaxNoise = 1 }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := Features(context.Background(), c)
			var e *cachet.Error
			if !errors.As(err, &e) || e.Code != cachet.CodeInvalidArgument || e.Field != tc.field {
				t.Fatalf("got %v, want invalid_argument on %s", err, tc.field)
			}
		})
	}
}
