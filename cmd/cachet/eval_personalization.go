package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/personaleval"
	"github.com/cachetlab/cachet/model"
)

func newEvalPersonalizationCmd(cf *configFlags) *cobra.Command {
	c := personaleval.DefaultConfig()
	var refGuidance string
	cmd := &cobra.Command{
		Use:   "personalization",
		Short: "Evaluate the adapters on unseen subjects: identity vs the no-reference baseline and the oracle, prompt alignment, cost",
		Long: fmt.Sprintf(`Takes --subjects unseen test-split items (their canonical render is the one reference), generates each under
--prompts random scenes of its class with the adapters and, with the same prompts and noise, without them, and
reports identity similarity to the subject's item (evaluator-feature cosine and SSIM of the de-rendered item)
against the no-reference baseline and the oracle (the item rendered as the prompt says), prompt alignment
(eval base's accuracies), extraction latency, cache bytes per subject and the adapters' generation overhead.
Targets: identity gap closed ≥ %.0f %%, alignment ≥ %.0f %% of the base's, overhead ≤ %.0f %%, extraction < 1 s.
Writes report.json, report.md and grid.png (reference | prompt | adapted | no reference) into --out.`,
			100*personaleval.GapTarget, 100*personaleval.AlignmentTarget, 100*personaleval.OverheadTarget),
		Example: `  cachet eval personalization --torch-threads 2
  cachet eval personalization --weights /var/cache/cachet/train/snapshot.safetensors --adapters /tmp/adapters.safetensors --subjects 10 --prompts 2 --out /tmp/eval-pers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			c.Weights = cf.cfg.Weights
			g, err := model.ParseReferenceGuidance(refGuidance)
			if err != nil {
				return err
			}
			c.ReferenceGuidance = g
			c.TorchThreads = model.NumThreads()
			c.Progress = cmd.ErrOrStderr()
			r, err := personaleval.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Markdown())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&refGuidance, "reference-guidance", model.GuideReference.String(), referenceGuidanceHelp)
	f.StringVar(&c.Adapters, "adapters", c.Adapters, "adapter weights trained on --weights ('cachet train adapters')")
	f.StringVar(&c.Evaluator, "evaluator", c.Evaluator, "evaluator classifier weights ('cachet train evaluator')")
	f.StringVar(&c.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "report directory (report.json, report.md, grid.png)")
	f.IntVar(&c.Subjects, "subjects", c.Subjects, "unseen test-split subjects (classes in turn)")
	f.IntVar(&c.Prompts, "prompts", c.Prompts, "random scenes per subject")
	f.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the subjects, scenes and noise")
	f.IntVar(&c.Batch, "batch", c.Batch, "images per sampler request")
	f.IntVar(&c.Steps, "steps", c.Steps, "sampler steps")
	f.Float64Var(&c.Guidance, "guidance", c.Guidance, "classifier-free guidance scale")
	f.Float64Var(&c.CleanRenorm, "clean-renorm", c.CleanRenorm, cleanRenormHelp)
	return cmd
}
