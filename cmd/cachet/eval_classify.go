package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/classifyeval"
	"github.com/cachetlab/cachet/model"
)

func newEvalClassifyCmd(cf *configFlags) *cobra.Command {
	c := classifyeval.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "classify",
		Short: "Fashion-MNIST accuracy of zero-shot, TFUP, few-shot Tip-Adapter and the diffusion classifier; latency",
		Long: `Classifies the Fashion-MNIST test split with the model's features: zero-shot (class prototypes of the model's
own samples), TFUP (the test images as the unlabelled pool, as in the paper), --shots-shot Tip-Adapter (labelled
training images) and the diffusion classifier on --diffusion images; references: 5-NN on pixels and the
evaluator CNN. Also the TFUP cache's pseudo-label accuracy, the classify path's latency per image (features,
pgvector query, scoring) and throughput at --batch, and (--block-study) zero-shot and 1-NN accuracy of each
block subset on held-out training images. Needs Postgres (--database-url): the collections it builds are
deleted at the end; the zero-shot prototypes stay cached for the model. Writes report.json and report.md.`,
		Example: `  cachet eval classify --weights weights/base.safetensors                          # the full run
  cachet eval classify --weights W --test 2000 --knn-train 10000 --diffusion 50 --block-study 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			c.Weights, c.DatabaseURL, c.FeatureWeights = cf.cfg.Weights, cf.cfg.DatabaseURL, cf.cfg.Classify.FeatureWeights
			c.Service = classifyConfig(cf.cfg.Classify)
			c.TorchThreads = model.NumThreads()
			c.Progress = cmd.ErrOrStderr()
			r, err := classifyeval.Run(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Markdown())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Evaluator, "evaluator", c.Evaluator, "evaluator classifier weights (the CNN reference)")
	f.StringVar(&c.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory")
	f.StringVar(&c.Out, "out", c.Out, "report directory (report.json, report.md)")
	f.IntVar(&c.Test, "test", c.Test, "test images (0 = all 10,000)")
	f.IntVar(&c.Shots, "shots", c.Shots, "labelled training images per class for Tip-Adapter")
	f.IntVar(&c.ShotDraws, "shot-draws", c.ShotDraws, "draws of the labelled images the default (propagated) few-shot build is averaged over")
	f.IntVar(&c.Diffusion, "diffusion", c.Diffusion, "test images for the diffusion classifier (0 = skip)")
	f.Float64SliceVar(&c.DiffusionTimes, "diffusion-times", c.DiffusionTimes, "model times the diffusion classifier averages its denoising errors over (more: slower, better; 100,200,…,900 gave 74.9 % on held-out items)")
	f.IntVar(&c.KNNTrain, "knn-train", c.KNNTrain, "training images for kNN on pixels (0 = skip)")
	f.IntVar(&c.Validation, "validation", c.Validation, "last training images that tune α and β for the tuned rows (0 = none)")
	f.IntVar(&c.Robustness, "robustness", c.Robustness, "test images of the robustness section: clean and perturbed copies (shift, scale, rotation, contrast, noise, blur), as uploaded and recentred (0 = skip)")
	f.IntVar(&c.OutOfDomain, "out-of-domain", c.OutOfDomain, "test images per class of the out-of-domain task, letters rendered from --fonts (0 = skip)")
	f.StringVar(&c.FontsDir, "fonts", c.FontsDir, "directory of the .ttf faces the out-of-domain task renders")
	f.IntVar(&c.BlockStudy, "block-study", c.BlockStudy, "held-out training images for the block study (0 = skip)")
	f.IntVar(&c.LatencyBatches, "latency-batches", c.LatencyBatches, "classify requests timed")
	f.IntVar(&c.Batch, "batch", c.Batch, "images per timed request")
	f.Int64Var(&c.Seed, "seed", c.Seed, "seed (few-shot draw, diffusion-classifier noise)")
	return cmd
}
