package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/train"
)

func newTrainBaseCmd(cf *configFlags) *cobra.Command {
	c := train.DefaultBase()
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Train the default denoiser on Fashion-MNIST scenes (flow matching; checkpoints; --resume)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			c.Progress = cmd.ErrOrStderr()
			c.Command = "cachet " + strings.Join(os.Args[1:], " ")
			return train.Base(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", c.DataDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "where to write the EMA weights at the end")
	f.StringVar(&c.Checkpoint, "checkpoint", c.Checkpoint, "training-state checkpoint (rewritten periodically)")
	f.BoolVar(&c.Resume, "resume", false, "continue from --checkpoint if it exists")
	f.IntVar(&c.Steps, "steps", c.Steps, "total optimizer steps")
	f.IntVar(&c.Batch, "batch", c.Batch, "batch size")
	f.Float64Var(&c.LR, "lr", c.LR, "peak learning rate (AdamW)")
	f.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up steps, then cosine decay")
	f.Float64Var(&c.MinLRFrac, "min-lr-frac", c.MinLRFrac, "final learning rate as a fraction of --lr")
	f.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay")
	f.Float64Var(&c.EMADecay, "ema", c.EMADecay, "EMA decay of the shipped weights")
	f.Float64Var(&c.CondDropout, "cond-dropout", c.CondDropout, "probability of training the null condition (for guidance)")
	f.Float64Var(&c.GradClip, "grad-clip", c.GradClip, "max global gradient norm (0 = off)")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed for weights and batches")
	f.DurationVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "checkpoint interval")
	f.StringVar(&c.LogCSV, "log", c.LogCSV, "CSV log of the loss")
	f.DurationVar(&c.MaxTime, "max-time", 0, "checkpoint and stop after this much wall time (resume later)")
	f.IntVar(&c.Model.Width, "width", c.Model.Width, "model width")
	f.IntVar(&c.Model.Depth, "depth", c.Model.Depth, "model depth")
	f.IntVar(&c.Model.Heads, "heads", c.Model.Heads, "attention heads")
	f.IntVar(&c.Model.Patch, "patch", c.Model.Patch, "patch size")
	return cmd
}
