package train

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
)

// Common holds the settings every training job shares: data, outputs, schedule, optimiser, bookkeeping.
type Common struct {
	DataDir         string
	Out             string // weights to ship (the EMA, written at the end)
	Checkpoint      string // full training state, rewritten every CheckpointEvery
	Resume          bool
	Steps, Batch    int
	LR, MinLRFrac   float64
	Warmup          int
	WeightDecay     float64
	EMADecay        float64
	CondDropout     float64 // prompt → null condition (guidance's unconditional branch)
	GradClip        float64
	Seed            uint64
	CheckpointEvery time.Duration
	LogCSV          string
	Progress        io.Writer     // progress bar destination (stderr)
	MaxTime         time.Duration // checkpoint and stop after this much wall time (0 = no limit)
	ValSamples      int           // validation batch (test-split items) scored at each checkpoint
	Command         string        // recorded in the weights' metadata
	Device          string        // auto|cpu|cuda, parsed on the training worker's thread
	stopAtStep      int           // tests: checkpoint and stop at this step
}

func (c Common) validate() error {
	switch {
	case c.Steps <= 0 || c.Batch <= 0:
		return cachet.InvalidField("steps", "steps and batch must be positive (got %d, %d)", c.Steps, c.Batch)
	case c.LR <= 0 || c.LR > 1:
		return cachet.InvalidField("lr", "must be in (0, 1] (got %v)", c.LR)
	case c.CondDropout < 0 || c.CondDropout >= 1:
		return cachet.InvalidField("cond_dropout", "must be in [0, 1) (got %v)", c.CondDropout)
	case c.EMADecay < 0 || c.EMADecay >= 1:
		return cachet.InvalidField("ema_decay", "must be in [0, 1) (got %v)", c.EMADecay)
	case c.Out == "" || c.Checkpoint == "":
		return cachet.InvalidField("out", "the output and checkpoint paths must be set")
	}
	return nil
}

// device parses Device (auto when empty).
func (c Common) device() (model.Device, error) { return model.ParseDevice(c.Device) }

// LRAt is the learning rate at step: linear warm-up, then cosine decay to MinLRFrac·LR.
func (c Common) LRAt(step int) float64 { return c.schedule().At(step) }

func (c Common) schedule() Schedule {
	return Schedule{LR: c.LR, MinLRFrac: c.MinLRFrac, Warmup: c.Warmup, Steps: c.Steps}
}

func (c Common) trainer() model.TrainerConfig {
	return model.TrainerConfig{LR: c.LR, Beta1: 0.9, Beta2: 0.999, WeightDecay: c.WeightDecay, EMADecay: c.EMADecay}
}

// prepare loads the training and validation splits and creates the output directories.
func (c *Common) prepare() (set, val *dataset.Set, err error) {
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if set, err = dataset.Load(c.DataDir, dataset.Train); err != nil {
		return nil, nil, err
	}
	if val, err = dataset.Load(c.DataDir, dataset.Test); err != nil {
		return nil, nil, err
	}
	for _, p := range []string{c.Out, c.Checkpoint, c.LogCSV} {
		if p != "" {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, nil, fmt.Errorf("train: %w", err)
			}
		}
	}
	return set, val, nil
}

// onTrainingWorker loads the data and runs run on a worker with gradients on (every tensor operation on
// one OS thread), libtorch seeded and the device parsed there.
func (c *Common) onTrainingWorker(run func(set, val *dataset.Set, dev model.Device) error) error {
	set, val, err := c.prepare()
	if err != nil {
		return err
	}
	w := model.NewWorker(true)
	defer w.Close()
	return w.Do(context.Background(), func() error {
		if err := model.SetSeed(int64(c.Seed)); err != nil {
			return err
		}
		dev, err := c.device()
		if err != nil {
			return err
		}
		return run(set, val, dev)
	})
}
