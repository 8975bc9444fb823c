package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
)

func newBenchStepCacheCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultStepCacheOptions()
	var settings, out string
	cmd := &cobra.Command{
		Use:   "stepcache",
		Short: "Rank the step-cache policies: speed-up, compute, PSNR/SSIM vs uncached, class accuracy, FD; vs fewer steps",
		Long: `Samples --prompts prompts (spread over every class) at --steps steps uncached — the reference — then under
every setting: PSNR and SSIM against the reference images, the evaluator's class accuracy and the Fréchet
distance to real scenes of the same prompts, and the policy's compute fraction and units. Then --repeats
interleaved timing rounds (one --timing-images request per setting and round, same process) give each
setting's median wall time and speed-up. "steps=N" settings are the baseline every policy must beat: plain
sampling with fewer steps. Writes stepcache.json, stepcache.md and stepcache-pareto.png into --out.

Settings are separated by ';': a policy with its parameters ("taylorseer:interval=4,order=2") or
"steps=N". MagCache and TeaCache read the calibration next to the weights ('cachet calibrate').`,
		Example: `  ./cachet bench stepcache --torch-threads 2 --out bench/reports/stepcache
  ./cachet bench stepcache --preset dit-s/2 --timing-images 1 --settings "fora:interval=3;taylorseer:interval=4,order=2;steps=17"
  ./cachet bench stepcache --prompts 10 --repeats 1 --settings "fora:interval=3;foca:interval=4;steps=17"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if settings != "" {
				s, err := bench.ParseSettings(settings)
				if err != nil {
					return err
				}
				o.Settings = s
			}
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			o.Threads = model.NumThreads()
			o.Progress = cmd.ErrOrStderr()
			rep, err := bench.StepCache(cmd.Context(), o)
			if err != nil {
				return err
			}
			rep.Command = "cachet " + strings.Join(os.Args[1:], " ")
			if err := rep.Write(out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.Summary())
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s, %s and %s into %s (%.0f s)\n", bench.StepCacheJSON, bench.StepCacheMarkdown, bench.StepCachePlot, out, rep.Seconds)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Weights, "weights", o.Weights, "denoiser weights: a text-conditioned 32×32×1 model ('cachet train base')")
	f.StringVar(&o.Evaluator, "evaluator", o.Evaluator, "evaluator classifier weights ('cachet train evaluator')")
	f.StringVar(&o.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory")
	f.StringVar(&out, "out", "var/bench/stepcache", "report directory")
	f.IntVar(&o.Prompts, "prompts", o.Prompts, "prompts, spread evenly over the evaluation set (one image each)")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed of the starting noise")
	f.IntVar(&o.Steps, "steps", o.Steps, "reference steps")
	f.Float64Var(&o.Guidance, "guidance", o.Guidance, "classifier-free guidance scale")
	f.Float64Var(&o.CleanRenorm, "clean-renorm", o.CleanRenorm, cleanRenormHelp)
	f.IntVar(&o.Batch, "batch", o.Batch, "images per sampler request in the quality pass")
	f.IntVar(&o.Repeats, "repeats", o.Repeats, "interleaved timing rounds")
	f.IntVar(&o.TimingImages, "timing-images", o.TimingImages, "images per timed request")
	f.StringVar(&o.Preset, "preset", "", "timing only, on random weights of a preset (dit-s/2, dit-b/2, dit-l/2, dit-xl/2, fmnist): no quality pass")
	f.StringVar(&settings, "settings", "", "settings to measure, ';'-separated (default: every policy from gentle to aggressive, and the fewer-steps baselines)")
	return cmd
}
