package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/train"
)

func newTrainFeaturesCmd(cf *configFlags) *cobra.Command {
	c := train.DefaultFeatures()
	cmd := &cobra.Command{
		Use:   "features",
		Short: "Distil the classifier's features: moved, turned, scaled or noisy items get the base model's features of the item upright (checkpoints; --resume)",
		Args:  cobra.NoArgs,
		RunE:  trainRunE(cf, &c.Common, func(ctx context.Context) error { return train.Features(ctx, c) }),
	}
	f := cmd.Flags()
	addCommonTrainFlags(f, &c.Common, "feature model")
	f.StringVar(&c.Teacher, "teacher", c.Teacher, "the frozen model whose upright features are the targets (the student starts as it)")
	f.StringVar(&c.InitFrom, "init-from", "", "start the student from these distilled weights (to train them further on a fresh schedule when their checkpoint is gone) instead of the teacher's")
	f.IntVar(&c.Block, "block", c.Block, "the feature block (its input tokens), as the classifier's --classify-blocks")
	f.Float64Var(&c.TRef, "t-ref", c.TRef, "model time of the extraction pass, as the classifier's --classify-t-ref")
	f.Float64Var(&c.Warps.MaxTurn, "max-turn", c.Warps.MaxTurn, "largest turn of a training item, degrees")
	f.Float64Var(&c.Warps.MaxScale, "max-scale", c.Warps.MaxScale, "largest scale change of a training item (0.12: ×0.88…1.12)")
	f.IntVar(&c.Warps.MaxShift, "max-shift", c.Warps.MaxShift, "largest shift of a training item, pixels each way")
	f.Float64Var(&c.Warps.MaxNoise, "max-noise", c.Warps.MaxNoise, "largest noise σ (of full scale) on the noisy half of the items")
	return cmd
}
