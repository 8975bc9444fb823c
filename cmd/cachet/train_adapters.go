package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/train"
)

func newTrainAdaptersCmd(cf *configFlags) *cobra.Command {
	c := train.DefaultAdapters()
	cmd := &cobra.Command{
		Use:   "adapters",
		Short: "Train the DreamCache adapters on the frozen base (references: canonical renders; targets: random scenes)",
		Example: `  cachet train adapters --weights weights/base.safetensors --torch-threads 2
  cachet train adapters --weights /var/cache/cachet/train/snapshot.safetensors --steps 200 --out /tmp/adapters.safetensors --checkpoint /tmp/adapters.ckpt --log /tmp/adapters.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			c.Base = cf.cfg.Weights
			c.Progress = cmd.ErrOrStderr()
			c.Command = "cachet " + strings.Join(os.Args[1:], " ")
			return train.Adapters(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", c.DataDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "where to write the EMA adapter weights at the end")
	f.StringVar(&c.Checkpoint, "checkpoint", c.Checkpoint, "training-state checkpoint (rewritten periodically)")
	f.BoolVar(&c.Resume, "resume", false, "continue from --checkpoint if it exists")
	f.IntVar(&c.Steps, "steps", c.Steps, "total optimizer steps")
	f.IntVar(&c.Batch, "batch", c.Batch, "batch size")
	f.Float64Var(&c.LR, "lr", c.LR, "peak learning rate (AdamW)")
	f.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up steps, then cosine decay")
	f.Float64Var(&c.MinLRFrac, "min-lr-frac", c.MinLRFrac, "final learning rate as a fraction of --lr")
	f.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay")
	f.Float64Var(&c.EMADecay, "ema", c.EMADecay, "EMA decay of the shipped adapter weights")
	f.Float64Var(&c.CondDropout, "cond-dropout", c.CondDropout, "probability of training the null prompt (for guidance)")
	f.Float64Var(&c.NoRef, "no-ref", c.NoRef, "probability of training the null reference")
	f.Float64Var(&c.Erase, "erase", c.Erase, "random-erasing probability of a reference")
	f.Float64Var(&c.GradClip, "grad-clip", c.GradClip, "max global gradient norm (0 = off)")
	f.Float64Var(&c.TRef, "t-ref", c.TRef, "model time of the reference pass (featurecache's)")
	f.IntSliceVar(&c.Adapter.Blocks, "blocks", c.Adapter.Blocks, "blocks that get an adapter")
	f.IntVar(&c.Adapter.Inner, "inner", c.Adapter.Inner, "width of the reference cross-attention")
	f.IntVar(&c.Adapter.Heads, "heads", c.Adapter.Heads, "heads of the reference cross-attention")
	f.Float64Var(&c.MaxParamFrac, "max-param-frac", c.MaxParamFrac, "refuse adapters larger than this fraction of the base")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed for the adapter weights and the batches")
	f.DurationVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "checkpoint interval")
	f.StringVar(&c.LogCSV, "log", c.LogCSV, "CSV log of the loss")
	f.DurationVar(&c.MaxTime, "max-time", 0, "checkpoint and stop after this much wall time (resume later)")
	f.IntVar(&c.ValSamples, "val-samples", c.ValSamples, "validation batch (test-split items) scored at each checkpoint")
	return cmd
}
