// Package train runs Cachet's long training jobs: reproducible batches from the scene renderer,
// learning-rate schedules, progress, CSV logs, periodic checkpoints and exact resume.
package train

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// BaseConfig configures `cachet train base`.
type BaseConfig struct {
	Common
	Model model.Config
	// InitFrom starts from these weights (their config replaces Model) instead of a fresh initialisation:
	// further training of shipped weights, whose training-state checkpoint may be gone.
	InitFrom string
	// SmallWeight weighs the loss of small-scene rows against the large ones' 1 (a small item is a quarter
	// of the canvas; its class details are a small part of the unweighted loss). Validation stays unweighted.
	SmallWeight float64
}

// BaseModelConfig is the default model's architecture: a DiT on 32×32×1 scenes, patch 4 (64 tokens),
// sized to train within a few CPU-hours on two cores.
func BaseModelConfig() model.Config {
	return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4,
		MLPRatio: 4, Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(),
		MaxWords: 10, TextWidth: 128, TextDepth: 1}
}

// DefaultBase are the defaults of `cachet train base`.
func DefaultBase() BaseConfig {
	return BaseConfig{Model: BaseModelConfig(), Common: Common{DataDir: dataset.DefaultDir, Out: "weights/base.safetensors",
		Checkpoint: "var/train/base.ckpt.safetensors", Steps: 16000, Batch: 64, LR: 5e-4, MinLRFrac: 0.1,
		Warmup: 500, EMADecay: 0.999, CondDropout: 0.1, GradClip: 1, Seed: 1, CheckpointEvery: 5 * time.Minute,
		LogCSV: "var/train/base.csv", ValSamples: 256}, SmallWeight: 1}
}

func (c BaseConfig) validate() error {
	if err := c.Common.validate(); err != nil {
		return err
	}
	if !(c.SmallWeight > 0 && c.SmallWeight <= 100) {
		return cachet.InvalidField("small_weight", "must be in (0, 100] (got %v)", c.SmallWeight)
	}
	return c.Model.Validate()
}

// Batches draws reproducible training batches: batch k depends only on (seed, k), so a resumed run sees
// exactly the batches an uninterrupted one would.
type Batches struct {
	set         *dataset.Set
	cfg         model.Config
	seed        uint64
	dropP       float64
	smallWeight float64
}

// NewBatches samples from set.
func NewBatches(set *dataset.Set, cfg model.Config, seed uint64, condDropout float64) *Batches {
	return &Batches{set: set, cfg: cfg, seed: seed, dropP: condDropout, smallWeight: 1}
}

// WeighSmall makes batches weigh the loss of small-scene rows by w (large ones by 1); 1 leaves the rows
// unweighted (TrainBatch.Weights nil).
func (b *Batches) WeighSmall(w float64) *Batches {
	b.smallWeight = w
	return b
}

// weighScene sets row i's loss weight (of n rows) for its scene: smallWeight for a small one, 1 for a
// large one; a weight of 1 leaves the batch unweighted.
func weighScene(b *model.TrainBatch, i, n int, sc scene.Scene, smallWeight float64) {
	if smallWeight == 1 {
		return
	}
	if b.Weights == nil {
		b.Weights = make([]float64, n)
	}
	b.Weights[i] = 1
	if !sc.Large {
		b.Weights[i] = smallWeight
	}
}

// Batch k of size n: random items under random scenes, their canonical prompts, condition dropout,
// logit-normal t (as in SD3: more weight on mid-trajectory times) and Gaussian noise.
func (b *Batches) Batch(k uint64, n int) (model.TrainBatch, error) {
	rng := rand.New(rand.NewPCG(b.seed, k))
	per := scene.CanvasPixels
	out := model.TrainBatch{Images: make([]float32, n*per), Noise: make([]float32, n*per),
		Prompts: make([]string, n), Null: make([]bool, n), T: make([]float64, n)}
	for i := range n {
		idx := rng.IntN(b.set.Len())
		sc := scene.RandomScene(rng, b.set.Label(idx))
		img, err := scene.Render(b.set.Image(idx), sc)
		if err != nil {
			return out, err
		}
		scene.PutModelUnits(out.Images[i*per:], img[:])
		out.Prompts[i] = scene.Format(sc)
		out.Null[i] = rng.Float64() < b.dropP
		out.T[i] = 1 / (1 + math.Exp(-rng.NormFloat64()))
		weighScene(&out, i, n, sc, b.smallWeight)
		for p := range per {
			out.Noise[i*per+p] = float32(rng.NormFloat64())
		}
	}
	return out, nil
}

// Base trains the default model. It runs every tensor operation on a worker locked to one OS thread.
func Base(ctx context.Context, cfg BaseConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	return cfg.onTrainingWorker(func(set, val *dataset.Set, dev model.Device) error { return runBase(ctx, cfg, set, val, dev) })
}

func runBase(ctx context.Context, cfg BaseConfig, set, val *dataset.Set, dev model.Device) error {
	var m *model.DiT
	var err error
	if cfg.InitFrom != "" {
		if cfg.Model.TextPool != "" {
			m, err = model.LoadWithTextPool(cfg.InitFrom, dev, cfg.Model.TextPool)
		} else {
			m, _, err = model.Load(cfg.InitFrom, dev)
		}
		if err != nil {
			return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "init_from", Message: "init_from " + cfg.InitFrom, Err: err}
		}
		if !m.Cfg.IsTextGrayscale(scene.CanvasSide) {
			m.Close()
			return cachet.InvalidField("init_from", "%s is a %s model; the scenes need a text-conditioned %d×%d×1 one ('cachet train base' makes it)", cfg.InitFrom, m.Cfg, scene.CanvasSide, scene.CanvasSide)
		}
		cfg.Model = m.Cfg
		fmt.Fprintf(cfg.Progress, "base: starting from %s (%s)\n", cfg.InitFrom, m.Cfg)
	} else if m, err = model.New(cfg.Model, dev); err != nil {
		return err
	}
	defer m.Close()
	tr, err := model.NewTrainer(m, cfg.trainer())
	if err != nil {
		return err
	}
	defer tr.Close()
	batches := NewBatches(set, cfg.Model, cfg.Seed, cfg.CondDropout).WeighSmall(cfg.SmallWeight)
	ahead := newPrefetcher(runtime.GOMAXPROCS(0), func(k uint64) (model.TrainBatch, error) { return batches.Batch(k, cfg.Batch) })
	valBatch, err := NewBatches(val, cfg.Model, cfg.Seed+1000, 0).Batch(0, max(1, cfg.ValSamples))
	if err != nil {
		return err
	}
	j := job{Name: "base", Common: cfg.Common,
		load: func() (map[string]string, error) { return tr.LoadCheckpoint(cfg.Checkpoint) },
		step: func(k int, lr float64) (float64, error) {
			batch, err := ahead.get(uint64(k))
			if err != nil {
				return 0, err
			}
			tr.SetLR(lr)
			return tr.Step(batch, cfg.GradClip)
		},
		save: func(k int, meta map[string]string) (float64, error) {
			vl, err := model.FlowLoss(tr.EMA, valBatch)
			if err != nil {
				return 0, err
			}
			return vl, tr.SaveCheckpoint(cfg.Checkpoint, meta)
		},
	}
	final, err := j.run(ctx)
	if err != nil || final == nil {
		return err
	}
	final["train.data"] = "Fashion-MNIST train split (Debian dataset-fashion-mnist), random scenes"
	if err := tr.EMA.Save(cfg.Out, final); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Progress, "\nwrote %s (EMA weights, %d steps)\n", cfg.Out, cfg.Steps)
	return nil
}

type csvLog struct {
	f *os.File
	w *csv.Writer
}

func openCSV(path string, appendTo bool) (*csvLog, error) {
	if path == "" {
		return &csvLog{}, nil
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: log: %w", err)
	}
	l := &csvLog{f: f, w: csv.NewWriter(f)}
	if st, _ := f.Stat(); st.Size() == 0 {
		l.w.Write([]string{"step", "loss", "loss_ema", "lr", "val_loss_ema_weights", "elapsed_s"})
	}
	return l, nil
}

func (l *csvLog) write(step int, loss, lossEMA, lr, val float64, elapsed time.Duration) error {
	if l.w == nil {
		return nil
	}
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	l.w.Write([]string{strconv.Itoa(step), num(loss), num(lossEMA), num(lr), num(val), strconv.FormatFloat(elapsed.Seconds(), 'f', 1, 64)})
	l.w.Flush()
	return l.w.Error()
}

func (l *csvLog) close() {
	if l.f != nil {
		l.w.Flush()
		l.f.Close()
	}
}
