package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// maxGenerate bounds --n: a grid of more images is not readable and the batch would not fit comfortably.
const maxGenerate = 64

type generateFlags struct {
	weights, preset, prompt, out string
	label, n, steps, cols        int
	seed                         int64
	guidance                     float64
	cache                        string
	cacheParams                  map[string]string
}

func newGenerateCmd(cf *configFlags) *cobra.Command {
	var g generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate images from a prompt and write a PNG grid",
		Example: `  cachet generate --weights weights/base.safetensors --prompt "a small mirrored sneaker on the left, inverted" --n 16 --out grid.png
  cachet generate --preset dit-s/2 --label 207 --steps 10 --out random.png   # random weights, for timing`,
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
	f.IntVar(&g.steps, "steps", 50, "sampler steps")
	f.Float64Var(&g.guidance, "guidance", 4, "classifier-free guidance scale (1 = off)")
	f.StringVar(&g.out, "out", "grid.png", "output PNG")
	f.IntVar(&g.cols, "cols", 0, "grid columns (0 = square)")
	f.StringVar(&g.cache, "cache", "none", "step-cache policy: "+strings.Join(stepcache.Names(), ", "))
	f.StringToStringVar(&g.cacheParams, "cache-param", nil, "policy parameters, e.g. --cache-param interval=3,order=2")
	return cmd
}

func runGenerate(cmd *cobra.Command, cf *configFlags, g generateFlags) error {
	if g.preset == "" {
		g.weights = cf.cfg.Weights // the global --weights (default weights/base.safetensors)
	}
	switch {
	case g.n < 1 || g.n > maxGenerate:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--n must be between 1 and %d (got %d)", maxGenerate, g.n)
	case g.steps < 1 || g.steps > model.MaxSteps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--steps must be between 1 and %d (got %d)", model.MaxSteps, g.steps)
	case !strings.HasSuffix(strings.ToLower(g.out), ".png"):
		return cachet.Errorf(cachet.CodeInvalidArgument, "--out %q must name a .png file", g.out)
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
	var stats stepcache.Stats
	w := model.NewWorker(false)
	defer w.Close()
	var res *model.SampleResult
	var label string
	err = w.Do(cmd.Context(), func() error {
		m, err := loadOrInit(g)
		if err != nil {
			return err
		}
		defer m.Close()
		if g.weights != "" { // calibrated policies (MagCache) read the profile kept next to the weights
			cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(g.weights))
			if err != nil {
				return err
			}
			cacheCfg = cals.Apply(cacheCfg)
		}
		policy, err := stepcache.New(cacheCfg, m.Cfg.Depth)
		if err != nil {
			return err
		}
		req := model.SampleRequest{Seed: g.seed, Steps: g.steps, Guidance: g.guidance, Cache: policy}
		defer func() { stats = policy.Stats() }()
		if m.Cfg.Cond == model.CondText {
			prompt, err := canonicalPrompt(m.Cfg, g.prompt)
			if err != nil {
				return err
			}
			label = prompt
			req.Prompts = slices.Repeat([]string{prompt}, g.n)
		} else {
			if g.label < 0 || g.label >= m.Cfg.NumClasses {
				return cachet.Errorf(cachet.CodeInvalidArgument, "this model is label-conditioned: give --label between 0 and %d", m.Cfg.NumClasses-1)
			}
			label = fmt.Sprintf("class %d", g.label)
			req.Labels = slices.Repeat([]int{g.label}, g.n)
		}
		res, err = m.Sample(context.WithoutCancel(cmd.Context()), req)
		return err
	})
	if err != nil {
		return err
	}
	for i, d := range res.StepTimes {
		fmt.Fprintf(cmd.ErrOrStderr(), "step %3d/%d  %8.2f ms\n", i+1, len(res.StepTimes), float64(d.Microseconds())/1000)
	}
	total := 0.0
	for _, d := range res.StepTimes {
		total += d.Seconds()
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d images, %d steps: %.2f s (%.1f ms/step); cache %s: %d computed, %d reused, %d forecast units, compute fraction %.2f, %.1f MiB held\n",
		res.N, len(res.StepTimes), total, 1000*total/float64(len(res.StepTimes)), stats.Policy, stats.Computed, stats.Reused, stats.Forecast,
		stats.ComputeFraction, float64(stats.ExtraBytes)/(1<<20))
	tiles, labels := toTiles(res), slices.Repeat([]string{label}, res.N)
	if err := eval.WritePNG(g.out, eval.Grid(tiles, res.W, res.H, g.cols, labels, 4)); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", g.out)
	return nil
}

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

// canonicalPrompt checks a prompt against the model's grammar: for models trained on Cachet's scenes the
// scene grammar parses it (and names what is wrong); other text models check their vocabulary.
func canonicalPrompt(cfg model.Config, prompt string) (string, error) {
	if strings.TrimSpace(prompt) == "" {
		return "", cachet.Errorf(cachet.CodeInvalidArgument, "--prompt is empty; e.g. %q", "a small sneaker on the left")
	}
	if slices.Equal(cfg.Vocabulary, dataset.Vocabulary()) {
		s, err := dataset.Parse(prompt)
		if err != nil {
			return "", err
		}
		return dataset.Format(s), nil
	}
	return prompt, nil
}

// toTiles maps each image to [0, 1] grayscale (the mean over channels for latent-space models).
func toTiles(res *model.SampleResult) [][]float32 {
	per := res.H * res.W
	tiles := make([][]float32, res.N)
	for i := range tiles {
		tile := make([]float32, per)
		for c := range res.C {
			for p := range per {
				tile[p] += res.Pixels[(i*res.C+c)*per+p] / float32(res.C)
			}
		}
		for p := range tile {
			tile[p] = min(1, max(0, (tile[p]+1)/2))
		}
		tiles[i] = tile
	}
	return tiles
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
