package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

func newConvertCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert checkpoints of other projects into Cachet weights files",
	}
	cmd.AddCommand(newConvertDiTCmd(cf), newConvertF16Cmd())
	return cmd
}

func newConvertDiTCmd(_ *configFlags) *cobra.Command {
	var in, out string
	var hint model.Config
	cmd := &cobra.Command{
		Use:   "dit --in DiT-XL-2-256x256.pt --out dit-xl-2.safetensors",
		Short: "Convert a facebookresearch/DiT checkpoint (.pt state_dict) into a Cachet weights file",
		Long: `Reads an original DiT checkpoint (a torch.save'd state_dict, or a training checkpoint's "ema"
entry) without Python, infers the model (width, depth, patch, channels, MLP ratio, learn_sigma, classes,
image size) from its shapes, checks every tensor name and shape and the fixed pos_embed table, and writes
a Cachet weights file (fp32 safetensors, ε-prediction, label-conditioned; sample it with DDIM).

The head count is not stored in a checkpoint: it defaults to that of the public DiT size of the same width
(S 6, B 12, L 16, XL 16); give --heads for any other model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case in == "":
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert dit: give the DiT checkpoint with --in")
			case out == "":
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert dit: give the output weights file with --out")
			case filepath.Clean(in) == filepath.Clean(out):
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert dit: --out must differ from --in")
			case hint.Heads < 0 || hint.ImageSize < 0:
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert dit: --heads and --image-size must be positive")
			}
			cfg, err := model.ConvertDiTFile(in, out, hint)
			if err != nil {
				return err
			}
			sigma := ""
			if cfg.LearnSigma {
				sigma = ", learn_sigma"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "converted %s → %s: %s, %d classes%s\n", in, out, cfg, cfg.NumClasses, sigma)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "DiT checkpoint (.pt)")
	f.StringVar(&out, "out", "", "Cachet weights file to write (.safetensors)")
	f.IntVar(&hint.Heads, "heads", 0, "attention heads (default: the public DiT size of the checkpoint's width)")
	f.IntVar(&hint.ImageSize, "image-size", 0, "check the latent size in cells (DiT-*/2 at 256² → 32, at 512² → 64; default: from pos_embed)")
	return cmd
}

func newConvertF16Cmd() *cobra.Command {
	var in, out string
	cmd := &cobra.Command{
		Use:   "f16 --in weights.safetensors --out weights-f16.safetensors",
		Short: "Store a Cachet weights file in fp16 (half the bytes; values are widened back to fp32 on load)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case in == "" || out == "":
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert f16: give --in and --out")
			case filepath.Clean(in) == filepath.Clean(out):
				return cachet.Errorf(cachet.CodeInvalidArgument, "convert f16: --out must differ from --in")
			}
			rel, err := model.HalveWeightsFile(in, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (fp16; largest relative rounding error %.2g)\n", out, rel)
			return nil
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "fp32 weights file")
	cmd.Flags().StringVar(&out, "out", "", "fp16 weights file to write")
	return cmd
}
