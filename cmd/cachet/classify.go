package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/storage"
)

// classifyConfig maps the service configuration onto the classify package's.
func classifyConfig(c cachet.ClassifyConfig) classify.Config {
	cfg := classify.DefaultConfig()
	if len(c.Blocks) > 0 {
		cfg.Blocks = slices.Clone(c.Blocks)
	}
	if c.Grid > 0 {
		cfg.Grid = c.Grid
	}
	if c.TRef != 0 { // out-of-range values reach the extractor, which refuses them
		cfg.TRef = c.TRef
	}
	cfg.Center, cfg.Recenter = c.Center, c.Recenter
	cfg.Turns = slices.Clone(c.Turns)
	cfg.WhitenHead = c.WhitenHead
	cfg.Head.Samples, cfg.Head.Steps, cfg.Head.Guidance, cfg.Neighbours = c.PrototypeSamples, c.PrototypeSteps, c.PrototypeGuidance, c.Neighbours
	return cfg
}

// newClassifyService builds the classification service over a loaded model, loading the feature model
// on w when c names one; release frees it.
func newClassifyService(ctx context.Context, db *storage.DB, w *model.Worker, dit *model.DiT, weights string, c cachet.ClassifyConfig) (svc *classify.Service, release func(), err error) {
	id, err := featurecache.WeightsID(weights)
	if err != nil {
		return nil, nil, err
	}
	featureWeights, err := classify.ResolveFeatureWeights(weights, id, c.FeatureWeights)
	if err != nil {
		return nil, nil, err
	}
	if featureWeights == "" {
		svc, err = classify.New(db, w, dit, id, classifyConfig(c))
		return svc, func() {}, err
	}
	features, featuresID, release, err := classify.LoadFeatureModel(ctx, w, featureWeights)
	if err != nil {
		return nil, nil, err
	}
	if svc, err = classify.NewWithFeatures(db, w, dit, id, features, featuresID, classifyConfig(c)); err != nil {
		release()
		return nil, nil, err
	}
	slog.Info("classify features loaded", "weights", featureWeights, "feature_key", svc.Featurizer().Key())
	return svc, release, nil
}

func newClassifyCmd(cf *configFlags) *cobra.Command {
	var collection, rerank string
	var topK int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "classify IMAGE...",
		Short: "Classify PNG/JPEG images against a collection, or zero-shot against the model's classes",
		Long: `Classifies each image (a 28×28 item or a 32×32 canvas, PNG or JPEG) with the cache model of --collection
(built with POST /v1/collections/{id}/build), or zero-shot against the model's built-in classes. The first
zero-shot use of a model samples its class prototypes (--classify-samples images per class) and keeps them
in Postgres.`,
		Example: `  cachet classify --weights weights/base.safetensors item.png
  cachet classify --collection 3f0c…  a.png b.png --top-k 5
  cachet classify --weights weights/base.safetensors --rerank diffusion item.png   # slower, a little more accurate`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			images := make([][]byte, len(args))
			for i, p := range args {
				b, err := os.ReadFile(p)
				if err != nil {
					return cachet.Wrap(cachet.CodeInvalidArgument, err, "cannot read %s", p)
				}
				images[i] = b
			}
			var res *cachet.ClassifyResult
			err := withClassifier(cmd.Context(), cf.cfg, func(svc *classify.Service) error {
				var err error
				res, err = svc.Classify(cmd.Context(), cachet.ClassifyRequest{Collection: collection, Images: images, TopK: topK, Rerank: rerank})
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			for i, p := range res.Predictions {
				parts := make([]string, len(p.Top))
				for j, s := range p.Top {
					parts[j] = fmt.Sprintf("%s %.1f%% (zero-shot %.2f, cache %.2f", s.Label, 100*s.Probability, s.ZeroShot, s.Cache)
					if res.Rerank != "" {
						parts[j] += fmt.Sprintf(", %s %.2f", res.Rerank, s.Diffusion)
					}
					parts[j] += ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[i], strings.Join(parts, "; "))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s, %d cache entries; features %.1f ms, query %.1f ms, scoring %.1f ms, rerank %.1f ms\n", res.Method, res.CacheEntries,
				res.Timings.FeaturesMS, res.Timings.QueryMS, res.Timings.ScoringMS, res.Timings.RerankMS)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&collection, "collection", "", "collection id (empty: the model's built-in classes, zero-shot)")
	f.IntVar(&topK, "top-k", 3, "labels per image")
	f.StringVar(&rerank, "rerank", "", `"diffusion": add the diffusion classifier's logits (about 0.4 s an image, at most 32 images)`)
	f.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	return cmd
}

// withClassifier opens Postgres and the model (--weights) and runs fn with the service.
func withClassifier(ctx context.Context, cfg cachet.Config, fn func(*classify.Service) error) error {
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	db, err := storage.MigrateAndOpen(startCtx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := model.SetNumThreads(cfg.TorchThreads); err != nil {
		return err
	}
	w := model.NewWorker(false)
	defer w.Close()
	dit, release, err := model.LoadOn(ctx, w, cfg.Weights)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer release()
	svc, releaseFeatures, err := newClassifyService(ctx, db, w, dit, cfg.Weights, cfg.Classify)
	if err != nil {
		return err
	}
	defer releaseFeatures()
	return fn(svc)
}
