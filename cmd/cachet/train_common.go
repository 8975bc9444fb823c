package main

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/train"
)

// addCommonTrainFlags registers the flags every training command shares; shipped names what --out holds.
func addCommonTrainFlags(f *pflag.FlagSet, c *train.Common, shipped string) {
	f.StringVar(&c.DataDir, "data", c.DataDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "where to write the "+shipped+" at the end")
	f.StringVar(&c.Checkpoint, "checkpoint", c.Checkpoint, "training-state checkpoint (rewritten periodically)")
	f.BoolVar(&c.Resume, "resume", false, "continue from --checkpoint if it exists")
	f.IntVar(&c.Steps, "steps", c.Steps, "total optimizer steps (a resumed run may change it: the cosine is recomputed)")
	f.IntVar(&c.Batch, "batch", c.Batch, "batch size")
	f.Float64Var(&c.LR, "lr", c.LR, "peak learning rate (AdamW)")
	f.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up steps, then cosine decay")
	f.Float64Var(&c.MinLRFrac, "min-lr-frac", c.MinLRFrac, "final learning rate as a fraction of --lr")
	f.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay")
	f.Float64Var(&c.EMADecay, "ema", c.EMADecay, "EMA decay of the shipped weights")
	_ = f.SetAnnotation("ema", fieldAnnotation, []string{"ema_decay"})
	f.Float64Var(&c.CondDropout, "cond-dropout", c.CondDropout, "probability of training the null condition (for guidance)")
	f.Float64Var(&c.GradClip, "grad-clip", c.GradClip, "max global gradient norm (0 = off)")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed for the weights and the batches")
	f.DurationVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "checkpoint interval")
	f.StringVar(&c.LogCSV, "log", c.LogCSV, "CSV log of the loss")
	f.DurationVar(&c.MaxTime, "max-time", 0, "checkpoint and stop after this much wall time (resume later)")
	f.StringVar(&c.Device, "device", "cpu", "where the tensors live: cpu, cuda, or auto (CUDA when the linked libtorch has it)")
	f.IntVar(&c.ValSamples, "val-samples", c.ValSamples, "validation batch (test-split items) scored at each checkpoint")
}

// trainRunE sets the libtorch threads and the job's progress and command line, then runs it.
func trainRunE(cf *configFlags, c *train.Common, run func(ctx context.Context) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
			return err
		}
		c.Progress = cmd.ErrOrStderr()
		c.Command = "cachet " + strings.Join(os.Args[1:], " ")
		return run(cmd.Context())
	}
}
