package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// FeaturesConfig trains a feature model for the classifier: a copy of Teacher whose extraction pass
// gives a moved, turned, scaled or noisy item the features the teacher gives the item upright
// (docs/classification.md says why and what it measured).
type FeaturesConfig struct {
	Common
	Teacher  string  // the frozen model whose upright features are the targets
	InitFrom string  // the student's starting weights (earlier distilled ones); empty: the teacher's
	Block    int     // the classifier's feature block (its input tokens)
	TRef     float64 // the extraction pass's model time
	Warps    Warps
}

// Warps bound the perturbations a training item gets, each drawn uniformly: a turn of up to ±MaxTurn
// degrees, a scale within 1 ± MaxScale, a shift of up to ±MaxShift pixels each way, and for half the
// items a contrast within 1 ± 0.2 and Gaussian noise of up to MaxNoise (of full scale).
type Warps struct {
	MaxTurn, MaxScale, MaxNoise float64
	MaxShift                    int
}

// DefaultFeatures distils the shipped base model's classifier features.
func DefaultFeatures() FeaturesConfig {
	return FeaturesConfig{Common: Common{DataDir: dataset.DefaultDir, Out: "weights/features.safetensors",
		Checkpoint: "var/train/features.ckpt.safetensors", Steps: 3000, Batch: 32, LR: 3e-4, MinLRFrac: 0.1,
		Warmup: 50, GradClip: 1, Seed: 1, CheckpointEvery: 5 * time.Minute, LogCSV: "var/train/features.csv", ValSamples: 64},
		Teacher: "weights/base.safetensors", Block: classify.DefaultBlocks[len(classify.DefaultBlocks)-1], TRef: classify.DefaultTRef,
		Warps: Warps{MaxTurn: 12, MaxScale: 0.12, MaxShift: 2, MaxNoise: 0.03}}
}

func (c FeaturesConfig) validate() error {
	if err := c.Common.validate(); err != nil {
		return err
	}
	w := c.Warps
	switch {
	case c.Teacher == "":
		return cachet.InvalidField("teacher", "the teacher's weights must be set")
	case c.TRef < 0 || c.TRef > 1000 || math.IsNaN(c.TRef):
		return cachet.InvalidField("t_ref", "must be within 0…1000 (got %v)", c.TRef)
	case !(w.MaxTurn >= 0 && w.MaxTurn <= 45):
		return cachet.InvalidField("max_turn", "must be within 0…45 degrees (got %v)", w.MaxTurn)
	case !(w.MaxScale >= 0 && w.MaxScale <= 0.5):
		return cachet.InvalidField("max_scale", "must be within 0…0.5 (got %v)", w.MaxScale)
	case w.MaxShift < 0 || w.MaxShift > 6:
		return cachet.InvalidField("max_shift", "must be within 0…6 pixels (got %d)", w.MaxShift)
	case !(w.MaxNoise >= 0 && w.MaxNoise <= 0.2):
		return cachet.InvalidField("max_noise", "must be within 0…0.2 (got %v)", w.MaxNoise)
	}
	return nil
}

// Features trains the feature model. Every tensor operation runs on a worker locked to one OS thread.
func Features(ctx context.Context, cfg FeaturesConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	return cfg.onTrainingWorker(func(set, val *dataset.Set, dev model.Device) error { return runFeatures(ctx, cfg, set, val, dev) })
}

func runFeatures(ctx context.Context, cfg FeaturesConfig, set, val *dataset.Set, dev model.Device) error {
	teacher, _, err := model.Load(cfg.Teacher, dev)
	if err != nil {
		return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "teacher", Message: "teacher " + cfg.Teacher, Err: err}
	}
	defer teacher.Close()
	start := cfg.Teacher // the student starts as the teacher: upright features start right
	if cfg.InitFrom != "" {
		start = cfg.InitFrom
	}
	student, _, err := model.Load(start, dev)
	if err != nil {
		return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "init_from", Message: "init_from " + start, Err: err}
	}
	defer student.Close()
	if !student.Cfg.IsTextGrayscale(scene.CanvasSide) {
		return cachet.InvalidField("teacher", "%s is a %s model; the classifier's features need a %d×%d×1 one", cfg.Teacher, student.Cfg, scene.CanvasSide, scene.CanvasSide)
	}
	if student.Cfg.String() != teacher.Cfg.String() {
		return cachet.InvalidField("init_from", "%s is a %s model, not the teacher's %s", start, student.Cfg, teacher.Cfg)
	}
	d, err := model.NewFeatureDistiller(teacher, student, cfg.Block, cfg.TRef, cfg.trainer())
	if err != nil {
		return cachet.InvalidField("block", "%v", err)
	}
	defer d.Close()
	trainBatch := func(k uint64) (model.FeatureBatch, error) {
		rng := rand.New(rand.NewPCG(cfg.Seed, k))
		return cfg.Warps.batch(rng, cfg.Batch, func() *[scene.ItemPixels]uint8 { return set.Image(rng.IntN(set.Len())) })
	}
	ahead := newPrefetcher(runtime.GOMAXPROCS(0), trainBatch)
	// Validation items come from the end of the test split, away from the evaluations' first images.
	next := val.Len()
	valBatch, err := cfg.Warps.batch(rand.New(rand.NewPCG(cfg.Seed, math.MaxUint64)), max(1, cfg.ValSamples), func() *[scene.ItemPixels]uint8 {
		next--
		return val.Image(next)
	})
	if err != nil {
		return err
	}
	j := job{Name: "features", Common: cfg.Common,
		load: func() (map[string]string, error) { return d.LoadCheckpoint(cfg.Checkpoint) },
		step: func(k int, lr float64) (float64, error) {
			batch, err := ahead.get(uint64(k))
			if err != nil {
				return 0, err
			}
			d.SetLR(lr)
			return d.Step(batch, cfg.GradClip)
		},
		save: func(k int, meta map[string]string) (float64, error) {
			vl, err := d.Loss(valBatch)
			if err != nil {
				return 0, err
			}
			return vl, d.SaveCheckpoint(cfg.Checkpoint, meta)
		},
	}
	final, err := j.run(ctx)
	if err != nil || final == nil {
		return err
	}
	final["train.data"] = "Fashion-MNIST train split (Debian dataset-fashion-mnist), items upright and warped"
	final["train.teacher"] = cfg.Teacher
	teacherID, err := featurecache.WeightsID(cfg.Teacher)
	if err != nil {
		return err
	}
	final[classify.TeacherKey] = teacherID // serve uses features beside the weights they were distilled from
	if cfg.InitFrom != "" {
		final["train.init_from"] = cfg.InitFrom
	}
	final["features.block"] = fmt.Sprint(cfg.Block)
	final["features.t_ref"] = fmt.Sprint(cfg.TRef)
	out := d.Model
	if d.EMA != nil {
		out = d.EMA
	}
	if err := out.Save(cfg.Out, final); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Progress, "\nwrote %s (%d steps)\n", cfg.Out, cfg.Steps)
	return nil
}

// batch draws n items, each upright and warped, rendered and recentred as the classifier prepares an
// upload.
func (w Warps) batch(rng *rand.Rand, n int, draw func() *[scene.ItemPixels]uint8) (model.FeatureBatch, error) {
	b := model.FeatureBatch{N: n, Clean: make([]float32, 0, n*scene.CanvasPixels), Warped: make([]float32, 0, n*scene.CanvasPixels)}
	for range n {
		it := draw()
		moved := w.apply(rng, it)
		for _, x := range []struct {
			item *[scene.ItemPixels]uint8
			to   *[]float32
		}{{it, &b.Clean}, {&moved, &b.Warped}} {
			c, err := scene.Render(x.item, scene.Scene{Large: true})
			if err != nil {
				return b, err
			}
			rc := images.Recenter(&c)
			*x.to = append(*x.to, scene.ModelUnits(rc[:])...)
		}
	}
	return b, nil
}

func (w Warps) apply(rng *rand.Rand, it *[scene.ItemPixels]uint8) [scene.ItemPixels]uint8 {
	turn := (2*rng.Float64() - 1) * w.MaxTurn * math.Pi / 180
	s := 1 + (2*rng.Float64()-1)*w.MaxScale
	dx, dy := rng.IntN(2*w.MaxShift+1)-w.MaxShift, rng.IntN(2*w.MaxShift+1)-w.MaxShift
	out := images.Warp(it, s, turn, float64(dx), float64(dy))
	if rng.IntN(2) == 0 {
		f, sigma := 0.8+0.4*rng.Float64(), w.MaxNoise*rng.Float64()
		for i, v := range out {
			out[i] = uint8(math.Round(min(255, max(0, float64(v)*f+255*sigma*rng.NormFloat64()))))
		}
	}
	return out
}
