package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
	"github.com/cachetlab/cachet/storage"
	"github.com/cachetlab/cachet/subjects"
)

// maxGenerate bounds --n: a grid of more images is not readable and the batch would not fit comfortably.
const maxGenerate = 64

type generateFlags struct {
	weights, preset, prompt, out string
	label, n, steps, cols        int
	seed                         int64
	guidance, guidanceRescale    float64
	cleanRenorm                  float64
	detail                       generate.Detail
	negativePrompt               string
	negativeGuidance             float64
	cache, speed                 string
	cacheParams                  map[string]string
	subject, adapters            string
	referenceGuidance            string
}

// cleanRenormHelp describes --clean-renorm (generate, eval base, eval personalization).
const cleanRenormHelp = "clean-image renormalisation φ in [0, 1]: each guided step's clean image moved towards the conditional one's per-image mean and spread (0 = off)"

// referenceGuidanceHelp describes --reference-guidance (generate, eval personalization).
const referenceGuidanceHelp = "what guidance scales: joint (subject and prompt), prompt (the subject enters once) or subject (the prompt enters once)"

func newGenerateCmd(cf *configFlags) *cobra.Command {
	var g generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate images from a prompt and write a PNG grid",
		Example: `  cachet generate --weights weights/base.safetensors --prompt "a small mirrored sneaker on the left, inverted" --n 16 --out grid.png
  cachet generate --preset dit-s/2 --label 207 --steps 10 --out random.png   # random weights, for timing
  cachet generate --prompt "a small coat on the left" --subject coat.safetensors --out coat.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGenerate(cmd, cf, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&g.preset, "preset", "", "random weights of a named preset instead of --weights ("+strings.Join(model.PresetNames(), ", ")+")")
	f.StringVar(&g.prompt, "prompt", "", "what to draw (text-conditioned models)")
	f.IntVar(&g.label, "label", -1, "class label (label-conditioned models)")
	f.IntVar(&g.n, "n", 4, fmt.Sprintf("number of images (1…%d)", maxGenerate))
	f.Int64Var(&g.seed, "seed", 0, "seed: the same seed gives the same images")
	f.IntVar(&g.steps, "steps", 0, "sampler steps (default: the --speed preset's)")
	f.StringVar(&g.speed, "speed", "", "speed preset, choosing steps and cache policy by fidelity: "+strings.Join(cachet.SpeedNames(), ", ")+" (default "+cachet.DefaultSpeed+"; not with --steps or --cache)")
	f.Float64Var(&g.guidance, "guidance", cachet.DefaultGuidance, fmt.Sprintf("classifier-free guidance scale (1 = off; %g with --subject unless given)", cachet.DefaultSubjectGuidance))
	f.StringVar(&g.negativePrompt, "negative-prompt", "", "steer away from this (in the model's words, e.g. \"a small in the center\")")
	f.Float64Var(&g.negativeGuidance, "negative-guidance", generate.DefaultNegativeGuidance, "how hard --negative-prompt pushes (adds to --guidance)")
	f.Float64Var(&g.guidanceRescale, "guidance-rescale", 0, "guidance rescale φ in [0, 1]: counters guidance's over-exposure (0 = off)")
	f.Float64Var(&g.cleanRenorm, "clean-renorm", cachet.DefaultCleanRenorm, cleanRenormHelp)
	f.Float64Var(&g.detail.Strength, "detail", 0, "redraw a small item at full size from this sampler time and shrink it back into its scene, within --steps (0 = off; default: --default-detail)")
	f.Float64Var(&g.detail.Settle, "detail-settle", 0, "after --detail, redraw the whole scene from this sampler time (0 = off)")
	f.StringVar(&g.out, "out", "grid.png", "output PNG")
	f.IntVar(&g.cols, "cols", 0, "grid columns (0 = square)")
	f.StringVar(&g.cache, "cache", "", "step-cache policy: "+strings.Join(stepcache.Names(), ", ")+" (default: --default-cache)")
	f.StringToStringVar(&g.cacheParams, "cache-param", nil, "policy parameters, e.g. --cache-param interval=3,order=2")
	f.StringVar(&g.subject, "subject", "", "personalize with a subject: a cache file from 'cachet extract' or a subject id")
	f.StringVar(&g.referenceGuidance, "reference-guidance", model.GuideReference.String(), "with --subject, "+referenceGuidanceHelp)
	f.StringVar(&g.adapters, "adapters", "", "adapter weights (default: adapters.safetensors next to --weights)")
	return cmd
}

func runGenerate(cmd *cobra.Command, cf *configFlags, g generateFlags) error {
	if g.preset == "" {
		g.weights = cf.cfg.Weights // the global --weights (default weights/base.safetensors)
	}
	if !strings.HasSuffix(strings.ToLower(g.out), ".png") {
		return cachet.Errorf(cachet.CodeInvalidArgument, "--out %q must name a .png file", g.out)
	}
	refGuidance, err := model.ParseReferenceGuidance(g.referenceGuidance)
	if err != nil {
		return err
	}
	if !cmd.Flags().Changed("guidance") {
		g.guidance = cachet.DefaultGuidanceFor(g.subject != "")
	}
	if g.subject != "" && g.weights == "" {
		return cachet.Errorf(cachet.CodeInvalidArgument, "--subject needs trained weights (--weights), not --preset")
	}
	if _, err := os.Stat(g.subject); g.subject != "" && err != nil && !uuidPattern.MatchString(g.subject) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "--subject %q is neither a cache file (cachet extract) nor a subject id", g.subject)
	}
	cacheCfg, err := cacheConfig(g.cache, g.cacheParams)
	if err != nil {
		return err
	}
	if err := cacheCfg.Validate(); err != nil {
		return err
	}
	if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
		return err
	}
	ctx := cmd.Context()
	w := model.NewWorker(false)
	defer w.Close()
	var m *model.DiT
	if err := w.Do(ctx, func() error { var err error; m, err = loadOrInit(g); return err }); err != nil {
		return err
	}
	defer w.Do(context.Background(), func() error { m.Close(); return nil }) //nolint:errcheck // closing

	svc := generate.New(w, m, generate.Options{MaxImages: maxGenerate})
	var refs *featurecache.Features
	if g.weights != "" { // calibrations, adapters and subjects belong to trained weights
		if g.adapters == "" {
			g.adapters = adaptersPath(g.weights)
		}
		defaultCache, err := stepcache.ParseConfig(cf.cfg.DefaultCache)
		if err != nil {
			return fmt.Errorf("--default-cache: %w", err)
		}
		p, err := newPersonalization(ctx, w, m, g.weights, g.adapters,
			generate.Options{MaxImages: maxGenerate, DefaultCache: defaultCache, DefaultDetail: generate.Detail{Strength: cf.cfg.DefaultDetail}})
		if err != nil {
			return err
		}
		defer p.close()
		svc = p.gen
		if g.subject != "" {
			if refs, err = loadSubject(ctx, cf.cfg, g.subject, p.modelID); err != nil {
				return err
			}
		}
	}
	var detail *generate.Detail // unset: the service's default (--default-detail)
	if cmd.Flags().Changed("detail") || cmd.Flags().Changed("detail-settle") {
		detail = &g.detail
	}
	res, err := svc.Generate(ctx, generate.Request{Prompt: g.prompt, Label: g.label, Refs: refs, ReferenceGuidance: refGuidance, N: g.n, Seed: g.seed,
		Speed: g.speed, Steps: g.steps, Guidance: g.guidance, GuidanceRescale: g.guidanceRescale, CleanRenorm: g.cleanRenorm,
		NegativePrompt: g.negativePrompt, NegativeGuidance: g.negativeGuidance, Cache: cacheCfg, Detail: detail})
	if err != nil {
		return err
	}
	for i, d := range res.StepTimes {
		fmt.Fprintf(cmd.ErrOrStderr(), "step %3d/%d  %8.2f ms\n", i+1, len(res.StepTimes), float64(d.Microseconds())/1000)
	}
	total := res.Sampling.Seconds()
	stats := res.Cache
	if res.Speed != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "speed %s\n", res.Speed)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d images, %d steps: %.2f s (%.1f ms/step); cache %s: %d computed, %d reused, %d forecast units, compute fraction %.2f, %.1f MiB held\n",
		res.N, len(res.StepTimes), total, 1000*total/float64(len(res.StepTimes)), stats.Policy, stats.Computed, stats.Reused, stats.Forecast,
		stats.ComputeFraction, float64(stats.ExtraBytes)/(1<<20))
	if res.Detail > 0 { // the steps above are the draft's; the redraw took the rest of --steps, uncached
		fmt.Fprintf(cmd.ErrOrStderr(), "small item redrawn at full size from t = %g (%d draft + %d redraw steps)\n",
			res.Detail, len(res.StepTimes), model.ImageToImageSteps(res.Detail, len(res.StepTimes)))
	}
	if refs != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "personalized with %s: %d reference tokens × blocks %v\n", g.subject, refs.Tokens, refs.Blocks)
	}
	tiles, labels := res.Tiles(), slices.Repeat([]string{res.Prompt}, res.N)
	if err := eval.WritePNG(g.out, eval.Grid(tiles, res.W, res.H, g.cols, labels, 4)); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", g.out)
	return nil
}

// loadSubject reads a subject's reference cache for model modelID: a cache file (cachet extract) or the
// id of a ready subject in the service's database and object store.
func loadSubject(ctx context.Context, cfg cachet.Config, arg, modelID string) (*featurecache.Features, error) {
	if _, err := os.Stat(arg); err == nil {
		data, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return featurecache.Decode(data, modelID)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	db, err := storage.MigrateAndOpen(sctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	objects, err := storage.OpenObjects(sctx, cfg.S3)
	if err != nil {
		return nil, err
	}
	f, _, err := subjects.New(db, objects, nil, subjects.Options{}).Features(ctx, arg, modelID)
	return f, err
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func loadOrInit(g generateFlags) (*model.DiT, error) {
	if g.weights != "" {
		m, _, err := model.Load(g.weights, model.CPU)
		return m, err
	}
	cfg, err := model.Preset(g.preset)
	if err != nil {
		return nil, err
	}
	return model.New(cfg, model.CPU)
}

// cacheConfig turns --cache and --cache-param into a policy config.
func cacheConfig(name string, raw map[string]string) (stepcache.Config, error) {
	c := stepcache.Config{Name: name, Params: map[string]float64{}}
	for k, v := range raw {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, cachet.Errorf(cachet.CodeInvalidArgument, "--cache-param %s=%q is not a number", k, v)
		}
		c.Params[k] = f
	}
	return c, nil
}
