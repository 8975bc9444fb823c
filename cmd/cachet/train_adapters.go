package main

import (
	"context"

	"github.com/spf13/cobra"

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
		RunE: trainRunE(cf, &c.Common, func(ctx context.Context) error {
			c.Base = cf.cfg.Weights
			return train.Adapters(ctx, c)
		}),
	}
	f := cmd.Flags()
	addCommonTrainFlags(f, &c.Common, "EMA adapter weights")
	f.Float64Var(&c.NoRef, "no-ref", c.NoRef, "probability of training the null reference")
	f.Float64Var(&c.Erase, "erase", c.Erase, "random-erasing probability of a reference")
	f.Float64Var(&c.TRef, "t-ref", c.TRef, "model time of the reference pass (featurecache's)")
	f.IntVar(&c.Views, "ref-views", c.Views, "views of each reference the adapters read: 1 (as given), 2 (also its small centred render) … 6 (also its small renders at left, right, top, bottom)")
	_ = f.SetAnnotation("ref-views", fieldAnnotation, []string{"views"})
	f.BoolVar(&c.ViewEmbedding, "view-embedding", c.ViewEmbedding, "with --ref-views above 1: learn an embedding per view, so the adapters tell the views' tokens apart")
	f.Float64Var(&c.SmallWeight, "small-weight", c.SmallWeight, "loss weight of rows whose target is a small scene (large: 1)")
	f.StringVar(&c.InitFrom, "init-from", "", "start from these adapter weights (made for an earlier base, or for fewer --blocks): the blocks both adapt carry over, converted between the concat and --additive forms; --inner and --heads must match")
	f.IntSliceVar(&c.Adapter.Blocks, "blocks", c.Adapter.Blocks, "blocks that get an adapter")
	f.IntVar(&c.Adapter.Inner, "inner", c.Adapter.Inner, "width of the reference cross-attention")
	f.IntVar(&c.Adapter.Heads, "heads", c.Adapter.Heads, "heads of the reference cross-attention")
	f.BoolVar(&c.Adapter.Additive, "additive", c.Adapter.Additive, "add the projected cross-attention to the self-attention output (a third of concat's parameters per block) instead of DreamCache's concat projection")
	f.Float64Var(&c.MaxParamFrac, "max-param-frac", c.MaxParamFrac, "refuse adapters larger than this fraction of the base")
	return cmd
}
