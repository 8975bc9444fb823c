package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/train"
)

func newTrainBaseCmd(cf *configFlags) *cobra.Command {
	c := train.DefaultBase()
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Train the default denoiser on Fashion-MNIST scenes (flow matching; checkpoints; --resume)",
		Args:  cobra.NoArgs,
		RunE:  trainRunE(cf, &c.Common, func(ctx context.Context) error { return train.Base(ctx, c) }),
	}
	f := cmd.Flags()
	addCommonTrainFlags(f, &c.Common, "EMA weights")
	f.IntVar(&c.Model.Width, "width", c.Model.Width, "model width")
	f.IntVar(&c.Model.Depth, "depth", c.Model.Depth, "model depth")
	f.IntVar(&c.Model.Heads, "heads", c.Model.Heads, "attention heads")
	f.IntVar(&c.Model.Patch, "patch", c.Model.Patch, "patch size")
	f.StringVar(&c.Model.TextPool, "text-pool", c.Model.TextPool, "how the text encoder pools its words: \"\" (mean) or \"attention\" (a learned query; with --init-from on mean-pooled weights it starts as their mean)")
	f.Float64Var(&c.SmallWeight, "small-weight", c.SmallWeight, "loss weight of rows whose target is a small scene (large: 1)")
	f.StringVar(&c.InitFrom, "init-from", "", "start from these weights (e.g. the shipped base, to train it further on a fresh schedule; their config replaces --width, --depth, --heads, --patch)")
	return cmd
}
