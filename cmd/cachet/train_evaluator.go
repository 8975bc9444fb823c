package main

import (
	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/train"
)

func newTrainEvaluatorCmd(cf *configFlags) *cobra.Command {
	o := train.DefaultEvaluatorConfig()
	cmd := &cobra.Command{
		Use:   "evaluator",
		Short: "Train the evaluator CNN on Fashion-MNIST (accuracy and the feature space for FID/identity metrics)",
		Long: `Trains the evaluator on Fashion-MNIST's training split (minus --val items that pick the best epoch),
AdamW with cosine decay. Augmentation: with probability --derender the Render→Derender round trip under a
random scene (small scenes blur the item, as on generated ones), --flip, --shift. Each epoch reports test
accuracy, plain and de-rendered; the best epoch's weights are written to --out, metrics to <out>.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return train.Evaluator(cmd.Context(), o, cf.cfg.TorchThreads, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", o.Out, "weights file to write (safetensors); metrics go next to it as .json")
	f.StringVar(&o.Data, "data", o.Data, "Fashion-MNIST directory")
	f.IntVar(&o.Epochs, "epochs", o.Epochs, "passes over the training items")
	f.IntVar(&o.Batch, "batch", o.Batch, "batch size")
	f.Float64Var(&o.LR, "lr", o.LR, "peak learning rate (AdamW), decayed by a cosine to --min-lr-frac of it")
	f.Float64Var(&o.MinLRFrac, "min-lr-frac", o.MinLRFrac, "final learning rate as a fraction of --lr")
	f.Float64Var(&o.WeightDecay, "weight-decay", o.WeightDecay, "AdamW weight decay")
	f.Float64Var(&o.Dropout, "dropout", o.Dropout, "dropout on the 256-d features while training")
	f.Uint64Var(&o.Seed, "seed", o.Seed, "seed for initialisation, shuffling, augmentation and dropout")
	f.IntVar(&o.Val, "val", o.Val, "training items held out to select the best epoch (0: select on the test set)")
	f.Float64Var(&o.DerenderP, "derender", o.DerenderP, "probability of the Render→Derender augmentation")
	_ = f.SetAnnotation("derender", fieldAnnotation, []string{"derender_p"})
	f.IntVar(&o.Shift, "shift", o.Shift, "random shift augmentation, ± pixels (0 = off)")
	f.BoolVar(&o.Flip, "flip", o.Flip, "random left↔right mirroring augmentation")
	f.StringVar(&o.Device, "device", o.Device, "auto|cpu|cuda (auto: CUDA when the linked libtorch has it)")
	f.IntVar(&o.TrainItems, "train-items", 0, "train on only the first N training items (quick trials; 0 = all)")
	return cmd
}
