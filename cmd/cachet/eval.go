package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/model"
)

func newEvalCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate models against their quality bars (reports under var/eval/)",
	}
	cmd.AddCommand(newEvalBaseCmd(cf), newEvalClassifyCmd(cf), newEvalPersonalizationCmd(cf))
	return cmd
}

func newEvalBaseCmd(cf *configFlags) *cobra.Command {
	c := baseeval.DefaultConfig()
	var interval, stochastic []float64
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Evaluate the default denoiser: prompt alignment and Fréchet distance against real scenes",
		Long: fmt.Sprintf(`Generates every scene prompt (%d: each class under all 24 scenes) × --seeds and reports class accuracy
(the evaluator on the de-rendered item), size, position and inversion accuracy (image moments), mirrored
accuracy on asymmetric classes and the Fréchet distance to real renders of the same prompts — with the same
metrics for real test-split items rendered under the same scenes (the ceiling) and the real-vs-real split
baseline. Bars: class accuracy ≥ %.0f %%; size, position and inversion ≥ %.0f %% each (at 50 steps).
Writes report.json, report.md and samples.png into --out, prints the markdown; progress goes to stderr.`,
			baseeval.NumPrompts, 100*baseeval.ClassBar, 100*baseeval.AttributeBar),
		Example: `  cachet eval base --torch-threads 1
  cachet eval base --weights /tmp/base200.safetensors --limit 20 --seeds 1 --out /tmp/eval-base`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			iv, err := parseInterval("--guidance-interval", interval)
			if err != nil {
				return err
			}
			c.GuidanceInterval = iv
			if c.StochasticInterval, err = parseInterval("--stochastic-interval", stochastic); err != nil {
				return err
			}
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			c.TorchThreads = model.NumThreads()
			c.Progress = cmd.ErrOrStderr()
			r, err := baseeval.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Markdown())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Weights, "weights", c.Weights, "denoiser weights: a text-conditioned 32×32×1 model ('cachet train base')")
	f.StringVar(&c.Evaluator, "evaluator", c.Evaluator, "evaluator classifier weights ('cachet train evaluator')")
	f.StringVar(&c.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "report directory (report.json, report.md, samples.png)")
	f.IntVar(&c.Seeds, "seeds", c.Seeds, "images per prompt (seeds --seed, --seed+1, …)")
	f.Int64Var(&c.FirstSeed, "seed", c.FirstSeed, "first seed")
	f.IntVar(&c.Batch, "batch", c.Batch, "prompts per sampler batch")
	f.IntVar(&c.Steps, "steps", c.Steps, "sampler steps (the bars are for 50)")
	f.Float64Var(&c.Guidance, "guidance", c.Guidance, "classifier-free guidance scale (generate's default)")
	f.Float64Var(&c.GuidanceRescale, "guidance-rescale", c.GuidanceRescale, "guidance rescale φ in [0, 1] (0 = off)")
	f.Float64Var(&c.CleanRenorm, "clean-renorm", c.CleanRenorm, cleanRenormHelp)
	f.Float64SliceVar(&stochastic, "stochastic-interval", nil, "re-noise (--stochasticity) only at sampler times t in (lo, hi], as lo,hi; default: every step")
	f.Float64SliceVar(&interval, "guidance-interval", nil, "guide only at sampler times t in (lo, hi] (1 = noise), as lo,hi; default: every step")
	f.StringVar(&c.Guide, "guide", c.Guide, "autoguidance's weaker model (a smaller, shorter-trained 'cachet train base' run)")
	f.Float64Var(&c.GuideScale, "guide-scale", c.GuideScale, "autoguidance scale (≤ 1: off); adds to --guidance, or replaces it with --guidance 1")
	f.Float64Var(&c.ClassContrast, "class-contrast", c.ClassContrast, "guide away from each prompt less its class word at this scale (0: off); adds to --guidance")
	f.Float64Var(&c.Stochasticity, "stochasticity", c.Stochasticity, "re-noise this share (0…<1) of the predicted noise every step (0: deterministic Euler)")
	f.BoolVar(&c.OptimizedScale, "optimized-scale", c.OptimizedScale, "scale the unconditional velocity to its projection on the conditional one (CFG-Zero*)")
	f.IntVar(&c.ZeroInitSteps, "zero-init-steps", c.ZeroInitSteps, "zero the velocity of this many first steps (CFG-Zero*)")
	f.Float64Var(&c.PerturbedGuidance, "perturbed-guidance", c.PerturbedGuidance, "perturbed-attention guidance scale (0: off): guide away from the model with --perturbed-blocks' attention maps made the identity")
	f.IntSliceVar(&c.PerturbedBlocks, "perturbed-blocks", []int{2}, "blocks whose self-attention --perturbed-guidance perturbs")
	f.Float64Var(&c.DetailStrength, "detail", c.DetailStrength, "redraw small items at full size from this sampler time, within --steps (image-to-image; 0: off)")
	f.Float64Var(&c.DetailSettle, "detail-settle", 0, "after --detail, redraw the composed scene from this sampler time (0: off)")
	f.Float64Var(&c.GuidanceProjection, "guidance-projection", c.GuidanceProjection, "remove this share (0…1) of the guidance's component parallel to the predicted image (APG; 0 = plain guidance)")
	f.StringVar(&c.Cache, "cache", "", "step-cache policy for the sampler, name or name:param=value,… calibrated from the weights' profile (\"\": none; redraws run uncached)")
	f.Float64Var(&c.TimeShift, "time-shift", c.TimeShift, "sampler time shift s: t ↦ s·t/(1+(s−1)·t); < 1 spends more steps at low noise (0 or 1: even)")
	f.StringSliceVar(&c.Classes, "classes", nil, "evaluate only these classes' prompts (e.g. pullover,shirt); default: all ten")
	f.IntVar(&c.Limit, "limit", c.Limit, fmt.Sprintf("evaluate only the first N of the %d prompts (0 = all)", baseeval.NumPrompts))
	return cmd
}

// parseInterval reads a lo,hi flag into a guidance interval (no values: every step). The bounds are
// checked where the interval is used.
func parseInterval(flag string, v []float64) (model.Interval, error) {
	switch len(v) {
	case 0:
		return model.Interval{}, nil
	case 2:
		return model.Interval{Lo: v[0], Hi: v[1]}, nil
	}
	return model.Interval{}, cachet.Errorf(cachet.CodeInvalidArgument, "%s takes two numbers, lo,hi (got %d)", flag, len(v))
}
