// Package baseeval is `cachet eval base`: it generates every scene prompt of the default model's grammar
// under a few seeds and measures how well the images follow their prompts — class (the evaluator on the
// de-rendered item), size, position and inversion (image moments), orientation for asymmetric classes —
// and how close they are to real renders (Fréchet distance of evaluator features), next to the same
// numbers for real items rendered under the same scenes (the ceiling). It writes report.json, report.md
// and samples.png.
//
// Everything but generation and the evaluator is pure Go (Judge, Tally, MirrorDetector, the report), so it
// is tested on real scenes without a model.
package baseeval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// Config configures one evaluation run.
type Config struct {
	Weights   string // the denoiser: a text-conditioned 32×32×1 model (cachet train base)
	Evaluator string // the evaluator classifier (cachet train evaluator)
	DataDir   string // Fashion-MNIST
	Out       string // report directory
	Seeds     int    // images per prompt
	FirstSeed int64  // seeds FirstSeed … FirstSeed+Seeds−1
	Batch     int    // prompts per sampler request
	Steps     int
	Guidance  float64
	// GuidanceRescale is the sampler's guidance rescale φ (0 = off).
	GuidanceRescale float64
	// CleanRenorm is the sampler's clean-image renormalisation φ (0 = off).
	CleanRenorm float64
	// GuidanceInterval is the sampler's guidance interval (zero: every step).
	GuidanceInterval model.Interval
	// Guide is autoguidance's weaker model (weights path) and GuideScale its scale (≤ 1: off).
	Guide      string
	GuideScale float64
	// GuidanceProjection is the share of the guidance's parallel component the sampler removes (APG).
	GuidanceProjection float64
	// TimeShift is the sampler's time shift (0 or 1: evenly spaced steps).
	TimeShift float64
	// ClassContrast is the negative-prompt guidance scale against each prompt less its class word
	// (scene.FormatWithoutClass; 0: off): it guides the class alone, not the size, place or inversion.
	ClassContrast float64
	// Stochasticity is the flow sampler's re-noising share η per step (0: deterministic Euler).
	Stochasticity float64
	// StochasticInterval limits the re-noising to sampler times t in (Lo, Hi] (zero: every step).
	StochasticInterval model.Interval
	// OptimizedScale and ZeroInitSteps are CFG-Zero*'s two parts (model.SampleRequest).
	OptimizedScale bool
	ZeroInitSteps  int
	// PerturbedGuidance is perturbed-attention guidance's scale over PerturbedBlocks (0: off).
	PerturbedGuidance float64
	PerturbedBlocks   []int
	// DetailStrength, when above 0, redraws small scenes' items at full size from that sampler time, and
	// DetailSettle, when above 0, then redraws the composed scene from that time (generate.Detail).
	DetailStrength float64
	DetailSettle   float64
	// Cache is a step-cache policy for the sampler ("name" or "name:param=value,…"; "": none), calibrated
	// from the profile next to Weights as the service does. Redraws run uncached, as in the service.
	Cache string
	// Classes, when set, keeps only these classes' prompts (names from scene.ClassNames).
	Classes []string
	Limit   int // evaluate only the first Limit prompts (0: all NumPrompts)
	// TorchThreads is recorded in the report (the caller sets libtorch's threads).
	TorchThreads int
	Progress     io.Writer // progress lines (stderr); nil: none
}

// DefaultConfig is `cachet eval base` without flags.
func DefaultConfig() Config {
	return Config{Weights: "weights/base.safetensors", Evaluator: "weights/evaluator.safetensors", DataDir: dataset.DefaultDir,
		Out: "var/eval/base", Seeds: 2, Batch: 40, Steps: 50, Guidance: cachet.DefaultGuidance, CleanRenorm: cachet.DefaultCleanRenorm,
		DetailStrength: cachet.DefaultDetail}
}

func (c Config) validate() error {
	switch {
	case c.Weights == "":
		return cachet.InvalidField("weights", "is empty; give the denoiser's weights (e.g. weights/base.safetensors)")
	case c.Evaluator == "":
		return cachet.InvalidField("evaluator", "is empty; give the evaluator's weights (e.g. weights/evaluator.safetensors)")
	case c.Out == "":
		return cachet.InvalidField("out", "is empty; give the report directory")
	case c.Seeds <= 0:
		return cachet.InvalidField("seeds", "must be positive (got %d)", c.Seeds)
	case c.Steps <= 0 || c.Steps > model.MaxSteps:
		return cachet.InvalidField("steps", "must be between 1 and %d (got %d)", model.MaxSteps, c.Steps)
	case c.Batch <= 0:
		return cachet.InvalidField("batch", "must be positive (got %d)", c.Batch)
	case c.Limit < 0 || c.Limit > NumPrompts:
		return cachet.InvalidField("limit", "must be between 0 (all) and %d, the number of prompts (got %d)", NumPrompts, c.Limit)
	case math.IsNaN(c.Guidance) || c.Guidance < 0 || c.Guidance > 50:
		return cachet.InvalidField("guidance", "must be between 0 and 50 (got %v)", c.Guidance)
	case math.IsNaN(c.GuidanceRescale) || c.GuidanceRescale < 0 || c.GuidanceRescale > 1:
		return cachet.InvalidField("guidance_rescale", "must be between 0 (off) and 1 (got %v)", c.GuidanceRescale)
	case math.IsNaN(c.CleanRenorm) || c.CleanRenorm < 0 || c.CleanRenorm > 1:
		return cachet.InvalidField("clean_renorm", "must be between 0 (off) and 1 (got %v)", c.CleanRenorm)
	case math.IsNaN(c.GuidanceProjection) || c.GuidanceProjection < 0 || c.GuidanceProjection > 1:
		return cachet.InvalidField("guidance_projection", "must be between 0 (plain guidance) and 1 (got %v)", c.GuidanceProjection)
	case math.IsNaN(c.GuideScale) || c.GuideScale < 0 || c.GuideScale > 50:
		return cachet.InvalidField("guide_scale", "must be between 0 and 50 (got %v)", c.GuideScale)
	case c.GuideScale > 1 && c.Guide == "":
		return cachet.InvalidField("guide_scale", "needs guide, the weaker model to guide with")
	case math.IsNaN(c.ClassContrast) || c.ClassContrast < 0 || c.ClassContrast > 50:
		return cachet.InvalidField("class_contrast", "must be between 0 (off) and 50 (got %v)", c.ClassContrast)
	case math.IsNaN(c.PerturbedGuidance) || c.PerturbedGuidance < 0 || c.PerturbedGuidance > 50:
		return cachet.InvalidField("perturbed_guidance", "must be between 0 (off) and 50 (got %v)", c.PerturbedGuidance)
	case c.PerturbedGuidance > 0 && len(c.PerturbedBlocks) == 0:
		return cachet.InvalidField("perturbed_guidance", "needs perturbed_blocks, the blocks whose attention it perturbs")
	case math.IsNaN(c.Stochasticity) || c.Stochasticity < 0 || c.Stochasticity >= 1:
		return cachet.InvalidField("stochasticity", "must be at least 0 (deterministic) and below 1 (got %v)", c.Stochasticity)
	case c.ZeroInitSteps < 0 || c.ZeroInitSteps >= c.Steps:
		return cachet.InvalidField("zero_init_steps", "must be between 0 and steps − 1 (got %d)", c.ZeroInitSteps)
	case math.IsNaN(c.TimeShift) || c.TimeShift < 0 || c.TimeShift > 20:
		return cachet.InvalidField("time_shift", "must be between 0 and 20 (got %v)", c.TimeShift)
	case math.IsNaN(c.DetailStrength) || c.DetailStrength < 0 || c.DetailStrength > 1:
		return cachet.InvalidField("detail", "must be between 0 (off) and 1 (got %v)", c.DetailStrength)
	case math.IsNaN(c.DetailSettle) || c.DetailSettle < 0 || c.DetailSettle > 1:
		return cachet.InvalidField("detail_settle", "must be between 0 (off) and 1 (got %v)", c.DetailSettle)
	case c.DetailSettle > 0 && c.DetailStrength == 0:
		return cachet.InvalidField("detail_settle", "needs detail, the full-size redraw it settles")
	}
	if err := c.StochasticInterval.Validate("stochastic_interval"); err != nil {
		return err
	}
	if err := c.GuidanceInterval.Validate("guidance_interval"); err != nil {
		return err
	}
	if _, err := ClassFilter(c.Classes); err != nil {
		return err
	}
	if c.Cache != "" {
		if _, err := stepcache.ParseConfig(c.Cache); err != nil {
			return cachet.InvalidField("cache", "%s: %v", c.Cache, err)
		}
	}
	return nil
}

// Run evaluates cfg.Weights and writes the report into cfg.Out. The model work runs on a worker of its
// own; ctx cancels between sampler steps.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	began := time.Now()
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	in, err := checkInputs(cfg)
	if err != nil {
		return nil, err
	}
	ref, err := referenceSets(cfg, in.prompts)
	if err != nil {
		return nil, err
	}
	ms, err := OpenModels(ctx, cfg.Weights, cfg.Evaluator)
	if err != nil {
		return nil, err
	}
	defer ms.Close()
	if err := checkModel(cfg.Weights, ms.DiT.Cfg, in.prompts); err != nil { // the file may have changed since
		return nil, err
	}
	smp, err := newSampling(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}
	defer smp.close()
	P, N := len(in.prompts), len(ref.scenes)
	rc := RunConfig{Weights: cfg.Weights, WeightsSHA256: in.weightsSum, Model: ms.DiT.Cfg.String(), Evaluator: cfg.Evaluator,
		EvaluatorSHA256: in.evalSum, Data: cfg.DataDir, Steps: cfg.Steps, Guidance: cfg.Guidance,
		GuidanceRescale: cfg.GuidanceRescale, CleanRenorm: cfg.CleanRenorm, GuidanceInterval: intervalField(cfg.GuidanceInterval), TimeShift: cfg.TimeShift, GuidanceProjection: cfg.GuidanceProjection, Guide: cfg.Guide, GuideScale: cfg.GuideScale, ClassContrast: cfg.ClassContrast, Stochasticity: cfg.Stochasticity, StochasticInterval: intervalField(cfg.StochasticInterval), OptimizedScale: cfg.OptimizedScale, ZeroInitSteps: cfg.ZeroInitSteps, PerturbedGuidance: cfg.PerturbedGuidance, PerturbedBlocks: cfg.PerturbedBlocks, DetailStrength: cfg.DetailStrength, DetailSettle: cfg.DetailSettle, Cache: cfg.Cache, Classes: cfg.Classes, Seeds: cfg.Seeds,
		FirstSeed: cfg.FirstSeed, Prompts: P, Limit: cfg.Limit, Batch: cfg.Batch, N: N, TorchThreads: cfg.TorchThreads}
	fmt.Fprintf(cfg.Progress, "eval base: %s (%s), %d prompts × %d seeds = %d images, batches of ≤ %d, %d steps, %s\n",
		cfg.Weights, ms.DiT.Cfg, P, cfg.Seeds, N, cfg.Batch, cfg.Steps, rc.samplerText())
	sampleStart := time.Now()
	genJ, err := smp.generateAll(ctx, cfg, in.prompts, ref.det, N)
	if err != nil {
		return nil, err
	}
	sampleSecs := time.Since(sampleStart).Seconds()
	fmt.Fprintf(cfg.Progress, "eval base: scoring %d generated and %d real items with the evaluator\n", N, 2*N)
	fd, err := frechetOf(ctx, ms, genJ, ref.realJ, ref.baseJ)
	if err != nil {
		return nil, err
	}
	r := NewReport(rc, Tally(genJ), Tally(ref.realJ), fd)
	r.SampleSeconds = sampleSecs
	if sampleSecs > 0 {
		r.ImagesPerSecond = float64(N) / sampleSecs
	}
	r.Seconds = time.Since(began).Seconds()
	if err := r.Write(cfg.Out, SampleGrid(genJ, ref.realJ, P)); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "eval base: wrote %s, %s and %s into %s (%.0f s in all)\n", JSONFile, MarkdownFile, SamplesFile, cfg.Out, r.Seconds)
	return r, nil
}

// inputs are a run's checked inputs: the files' digests and the prompts.
type inputs struct {
	weightsSum, evalSum string
	prompts             []scene.Scene
}

// checkInputs validates the settings, the output directory and the model files before any work.
func checkInputs(cfg Config) (*inputs, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkWritable(cfg.Out); err != nil {
		return nil, err
	}
	var in inputs
	var err error
	if in.weightsSum, err = fileSHA256(cfg.Weights, "weights", "train it with 'cachet train base'"); err != nil {
		return nil, err
	}
	if in.evalSum, err = fileSHA256(cfg.Evaluator, "evaluator", "train it with 'cachet train evaluator'"); err != nil {
		return nil, err
	}
	classes, err := ClassFilter(cfg.Classes)
	if err != nil {
		return nil, err
	}
	in.prompts = Prompts(cfg.Limit, classes...)
	_, mc, err := model.ReadWeightsFile(cfg.Weights)
	if err != nil {
		return nil, err
	}
	return &in, checkModel(cfg.Weights, mc, in.prompts)
}

// references are the scenes to draw (image j = seed j / P, prompt j % P), the real test-split renders of
// them and a second, independent real set (the real-vs-real baseline), judged.
type references struct {
	det          *MirrorDetector
	scenes       []scene.Scene
	realJ, baseJ []Judgement
}

func referenceSets(cfg Config, prompts []scene.Scene) (*references, error) {
	train, err := dataset.Load(cfg.DataDir, dataset.Train)
	if err != nil {
		return nil, err
	}
	ref := &references{det: NewMirrorDetector(train)}
	test, err := dataset.Load(cfg.DataDir, dataset.Test)
	if err != nil {
		return nil, err
	}
	for range cfg.Seeds {
		ref.scenes = append(ref.scenes, prompts...)
	}
	realImgs, err := RealScenes(test, ref.scenes, RealStream)
	if err != nil {
		return nil, err
	}
	baseImgs, err := RealScenes(test, ref.scenes, BaselineStream)
	if err != nil {
		return nil, err
	}
	if ref.realJ, err = JudgeAll(realImgs, ref.scenes, ref.det); err != nil {
		return nil, err
	}
	ref.baseJ, err = JudgeAll(baseImgs, ref.scenes, ref.det)
	return ref, err
}

// sampling is the run's sampler set-up: the models, an autoguidance model if any, and the step cache.
type sampling struct {
	ms       *Models
	guide    *model.DiT
	newCache func() (model.StepCache, error)
}

func newSampling(ctx context.Context, cfg Config, ms *Models) (_ *sampling, err error) {
	s := &sampling{ms: ms, newCache: func() (model.StepCache, error) { return nil, nil }}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if cfg.Guide != "" {
		if err := ms.W.Do(ctx, func() error {
			var err error
			s.guide, _, err = model.Load(cfg.Guide, model.CPU)
			return err
		}); err != nil {
			return nil, cachet.InvalidField("guide", "%s: %v", cfg.Guide, err)
		}
	}
	if cfg.Cache != "" {
		spec, err := stepcache.ParseConfig(cfg.Cache)
		if err != nil {
			return nil, err
		}
		cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(cfg.Weights))
		if err != nil {
			return nil, err
		}
		spec = cals.Apply(spec)
		depth := ms.DiT.Cfg.Depth
		if _, err := stepcache.New(spec, depth); err != nil {
			return nil, cachet.InvalidField("cache", "%s: %v", cfg.Cache, err)
		}
		s.newCache = func() (model.StepCache, error) { return stepcache.New(spec, depth) }
	}
	return s, nil
}

func (s *sampling) close() {
	if s.guide != nil {
		_ = s.ms.W.Do(context.Background(), func() error { s.guide.Close(); return nil })
	}
}

// generateAll samples every prompt under every seed in batches and judges each image, reporting progress.
func (s *sampling) generateAll(ctx context.Context, cfg Config, prompts []scene.Scene, det *MirrorDetector, n int) ([]Judgement, error) {
	genJ := make([]Judgement, 0, n)
	start := time.Now()
	P := len(prompts)
	for k := range cfg.Seeds {
		seed := cfg.FirstSeed + int64(k)
		for from := 0; from < P; from += cfg.Batch {
			to := min(P, from+cfg.Batch)
			req := model.SampleRequest{Seed: seed, Steps: cfg.Steps, Guidance: cfg.Guidance, GuidanceRescale: cfg.GuidanceRescale, CleanRenorm: cfg.CleanRenorm, Experimental: model.Experimental{GuidanceInterval: cfg.GuidanceInterval, TimeShift: cfg.TimeShift, GuidanceProjection: cfg.GuidanceProjection, Guide: s.guide, GuideScale: cfg.GuideScale, Stochasticity: cfg.Stochasticity, StochasticInterval: cfg.StochasticInterval, OptimizedScale: cfg.OptimizedScale, ZeroInitSteps: cfg.ZeroInitSteps, PerturbedGuidance: cfg.PerturbedGuidance, PerturbedBlocks: cfg.PerturbedBlocks}}
			imgs, err := sampleBatch(ctx, s.ms.W, s.ms.DiT, req, s.newCache, generate.Detail{Strength: cfg.DetailStrength, Settle: cfg.DetailSettle}, cfg.ClassContrast, prompts[from:to], from)
			if err != nil {
				return nil, err
			}
			for i := range imgs {
				j, err := Judge(&imgs[i], prompts[from+i], det)
				if err != nil {
					return nil, err
				}
				genJ = append(genJ, j)
			}
			done, el := len(genJ), time.Since(start)
			rate := float64(done) / el.Seconds()
			eta := time.Duration(float64(n-done) / rate * float64(time.Second))
			fmt.Fprintf(cfg.Progress, "eval base: %d/%d images  %.2f images/s  elapsed %s  ETA %s\n",
				done, n, rate, el.Round(time.Second), eta.Round(time.Second))
		}
	}
	return genJ, nil
}

// frechetOf is the Fréchet distance of the generated set to the real one, next to real vs real, in the
// evaluator's feature space.
func frechetOf(ctx context.Context, ms *Models, genJ, realJ, baseJ []Judgement) (Frechet, error) {
	var genF, realF, baseF [][]float64
	if err := ms.W.Do(ctx, func() error {
		var err error
		if genF, err = Classify(ms.Evaluator, genJ); err != nil {
			return err
		}
		if realF, err = Classify(ms.Evaluator, realJ); err != nil {
			return err
		}
		baseF, err = Classify(ms.Evaluator, baseJ)
		return err
	}); err != nil {
		return Frechet{}, err
	}
	n := len(genJ)
	fd := Frechet{N: n, Dims: model.ClassifierFeatures}
	if n < 2 {
		fd.Error = fmt.Sprintf("needs at least 2 images per set, got %d", n)
		return fd, nil
	}
	var errs []error
	if v, err := eval.FrechetDistance(genF, realF); err == nil {
		fd.GeneratedVsReal = &v
	} else {
		errs = append(errs, fmt.Errorf("generated vs real: %w", err))
	}
	if v, err := eval.FrechetDistance(realF, baseF); err == nil {
		fd.RealVsReal = &v
	} else {
		errs = append(errs, fmt.Errorf("real vs real: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		fd.Error = err.Error()
	}
	return fd, nil
}

// Noise is the starting noise of images [from, from+n) of a sampler request with the given seed: image
// i's from the stream (seed, i), exactly as model's sampler draws it, so a prompt's image does not depend
// on how the prompts are batched (the same as one request with every prompt). per is values per image.
func Noise(seed int64, from, n, per int) []float32 {
	out := make([]float32, n*per)
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(from+i)))
		for k := range per {
			out[i*per+k] = float32(rng.NormFloat64())
		}
	}
	return out
}

// checkModel refuses weights that cannot draw Cachet's scenes from their prompts.
func checkModel(path string, c model.Config, prompts []scene.Scene) error {
	if !c.IsTextGrayscale(scene.CanvasSide) {
		return cachet.InvalidField("weights",
			"%s holds a %s; eval base needs a text-conditioned 32×32×1 model trained on Cachet's scenes ('cachet train base')", path, c)
	}
	for _, w := range scene.Vocabulary() {
		if !slices.Contains(c.Vocabulary, w) {
			return cachet.InvalidField("weights",
				"%s: the model's vocabulary lacks the scene word %q; eval base needs a model trained on Cachet's scene prompts ('cachet train base')", path, w)
		}
	}
	for _, s := range prompts {
		if n := len(model.PromptWords(scene.Format(s))); n > c.MaxWords {
			return cachet.InvalidField("weights",
				"%s reads prompts of at most %d words; %q has %d", path, c.MaxWords, scene.Format(s), n)
		}
	}
	return nil
}

// checkWritable creates dir and proves a file can be written there, before any work is done.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cachet.InvalidField("out", "%s: cannot create the report directory: %v", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return cachet.InvalidField("out", "%s: cannot write there: %v", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileSHA256 hashes a file; a missing one is a clear CodeNotFound naming the field and the fix.
func fileSHA256(path, field, fix string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", cachet.FieldError(cachet.CodeNotFound, field, "%s does not exist; %s", path, fix)
	}
	if err != nil {
		return "", cachet.InvalidField(field, "%s: %v", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		return "", cachet.InvalidField(field, "%s is a directory; give the weights file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", cachet.InvalidField(field, "%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
