package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// StepCacheOptions configure one benchmark run.
type StepCacheOptions struct {
	Weights, Evaluator, DataDir string
	Prompts                     int // spread evenly over the evaluation prompt set (all classes)
	Seed                        int64
	Steps                       int
	Guidance                    float64
	CleanRenorm                 float64 // model.SampleRequest.CleanRenorm (0 = off)
	Batch                       int     // images per sampler request in the quality pass
	Repeats                     int     // interleaved timing rounds
	TimingImages                int     // images per timed request
	Settings                    []Setting
	// Preset, when set, times the settings on random weights of that preset (no quality pass: fidelity
	// means nothing there, timing does). Weights, Evaluator and DataDir are then unused.
	Preset   string
	Progress io.Writer
	Threads  int // recorded (the caller sets libtorch's threads)
}

// DefaultStepCacheOptions is `cachet bench stepcache` without flags.
func DefaultStepCacheOptions() StepCacheOptions {
	s, _ := ParseSettings(DefaultSettings)
	return StepCacheOptions{Weights: "weights/base.safetensors", Evaluator: "weights/evaluator.safetensors",
		DataDir: dataset.DefaultDir, Prompts: 80, Steps: 50, Guidance: cachet.DefaultGuidance, CleanRenorm: cachet.DefaultCleanRenorm, Batch: 40,
		Repeats: 3, TimingImages: 8, Settings: s}
}

func (o StepCacheOptions) validate() error {
	switch {
	case o.Prompts < 2 || o.Prompts > baseeval.NumPrompts:
		return cachet.Invalid("--prompts must be between 2 and %d (got %d)", baseeval.NumPrompts, o.Prompts)
	case o.Steps < 1 || o.Steps > model.MaxSteps:
		return cachet.Invalid("--steps must be between 1 and %d (got %d)", model.MaxSteps, o.Steps)
	case o.Batch < 1:
		return cachet.Invalid("--batch must be positive (got %d)", o.Batch)
	case o.Repeats < 1:
		return cachet.Invalid("--repeats must be positive (got %d)", o.Repeats)
	case o.TimingImages < 1:
		return cachet.Invalid("--timing-images must be positive (got %d)", o.TimingImages)
	case math.IsNaN(o.Guidance) || o.Guidance < 0 || o.Guidance > 50:
		return cachet.Invalid("--guidance must be between 0 and 50 (got %v)", o.Guidance)
	case math.IsNaN(o.CleanRenorm) || o.CleanRenorm < 0 || o.CleanRenorm > 1:
		return cachet.Invalid("--clean-renorm must be between 0 and 1 (got %v)", o.CleanRenorm)
	case len(o.Settings) == 0:
		return cachet.Invalid("no settings to measure")
	}
	for _, s := range o.Settings {
		if s.Steps > o.Steps {
			return cachet.Invalid("baseline %q has more steps than the reference's %d", s.Label(), o.Steps)
		}
	}
	return nil
}

// StepCacheRow is one setting's result.
type StepCacheRow struct {
	Label   string  `json:"label"`
	Setting Setting `json:"setting"`
	// ComputeFraction is the policy's own estimate (computed units / all units) over the quality pass;
	// for a fewer-steps baseline, steps/reference steps.
	ComputeFraction float64  `json:"compute_fraction"`
	MedianSeconds   float64  `json:"median_seconds"` // per timed request
	SpeedUp         float64  `json:"speed_up"`       // reference median / this median
	PSNR            float64  `json:"psnr_db"`        // vs the uncached images, mean over images (capped)
	SSIM            float64  `json:"ssim"`
	ClassAccuracy   float64  `json:"class_accuracy"`
	Frechet         *float64 `json:"frechet_distance"` // nil when the sets are too small for a covariance
	ExtraMiB        float64  `json:"extra_mib"`        // most cached-feature memory held in one request
	Computed        int      `json:"computed_units"`
	Reused          int      `json:"reused_units"`
	Forecast        int      `json:"forecast_units"`
}

// StepCacheReport is the whole run.
type StepCacheReport struct {
	Command      string         `json:"command"`
	Preset       string         `json:"preset,omitempty"` // a timing-only run on random weights: no quality columns
	Weights      string         `json:"weights,omitempty"`
	WeightsID    string         `json:"weights_id"`
	Model        string         `json:"model"`
	Steps        int            `json:"steps"`
	Guidance     float64        `json:"guidance"`
	CleanRenorm  float64        `json:"clean_renorm"`
	Images       int            `json:"images"`
	TimingImages int            `json:"timing_images"`
	Repeats      int            `json:"repeats"`
	Threads      int            `json:"torch_threads"`
	Reference    StepCacheRow   `json:"reference"`
	RealAccuracy float64        `json:"real_class_accuracy"`
	RealFrechet  *float64       `json:"real_vs_real_frechet"`
	Rows         []StepCacheRow `json:"rows"`
	Seconds      float64        `json:"seconds"`
}

// stepCacheRun holds what the measurements share.
type stepCacheRun struct {
	o        StepCacheOptions
	w        *model.Worker
	m        *model.DiT
	ev       *model.Classifier
	cals     stepcache.Calibrations
	scenes   []scene.Scene
	det      *baseeval.MirrorDetector
	realF    [][]float64
	refPx    [][]float32
	progress io.Writer
}

// SpreadPrompts picks n prompts spread evenly over the evaluation set, so every class is represented.
func SpreadPrompts(n int) []scene.Scene {
	all := baseeval.Prompts(0)
	out := make([]scene.Scene, n)
	for i := range out {
		out[i] = all[i*len(all)/n]
	}
	return out
}

// StepCache runs the step-cache benchmark: a quality pass per setting over the prompt set (PSNR/SSIM
// against the uncached images, evaluator class accuracy, Fréchet distance to real scenes), then
// interleaved timing rounds of every setting and the uncached reference in the same process.
func StepCache(ctx context.Context, o StepCacheOptions) (*StepCacheReport, error) {
	began := time.Now()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Preset != "" {
		return stepCacheTiming(ctx, o, began)
	}
	r := &stepCacheRun{o: o, progress: o.Progress, scenes: SpreadPrompts(o.Prompts)}
	if r.progress == nil {
		r.progress = io.Discard
	}
	sum, err := fileSum(o.Weights)
	if err != nil {
		return nil, err
	}
	if r.cals, err = stepcache.LoadCalibrations(stepcache.CalibrationPath(o.Weights)); err != nil {
		return nil, err
	}
	for _, s := range o.Settings {
		if !s.Baseline() {
			if _, err := stepcache.New(r.cals.Apply(s.Cache), 1); err != nil {
				return nil, fmt.Errorf("%s: %w", s.Label(), err)
			}
		}
	}
	train, err := dataset.Load(o.DataDir, dataset.Train)
	if err != nil {
		return nil, err
	}
	r.det = baseeval.NewMirrorDetector(train)
	test, err := dataset.Load(o.DataDir, dataset.Test)
	if err != nil {
		return nil, err
	}
	realImgs, err := baseeval.RealScenes(test, r.scenes, baseeval.RealStream)
	if err != nil {
		return nil, err
	}
	splitImgs, err := baseeval.RealScenes(test, r.scenes, baseeval.BaselineStream)
	if err != nil {
		return nil, err
	}

	r.w = model.NewWorker(false)
	defer r.w.Close()
	defer r.w.Do(context.Background(), func() error {
		if r.m != nil {
			r.m.Close()
		}
		if r.ev != nil {
			r.ev.Close()
		}
		return nil
	})
	if err := r.w.Do(ctx, func() error {
		var err error
		if r.m, _, err = model.Load(o.Weights, model.CPU); err != nil {
			return err
		}
		if !r.m.Cfg.IsTextGrayscale(scene.CanvasSide) {
			return cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a text-conditioned 32×32×1 scene model (%s)", o.Weights, r.m.Cfg)
		}
		r.ev, _, err = model.LoadClassifier(o.Evaluator, model.CPU)
		return err
	}); err != nil {
		return nil, err
	}

	rep := &StepCacheReport{Weights: o.Weights, WeightsID: sum, Model: r.m.Cfg.String(), Steps: o.Steps,
		Guidance: o.Guidance, CleanRenorm: o.CleanRenorm, Images: len(r.scenes), TimingImages: min(o.TimingImages, len(r.scenes)), Repeats: o.Repeats, Threads: o.Threads}
	realJ, err := baseeval.JudgeAll(realImgs, r.scenes, r.det)
	if err != nil {
		return nil, err
	}
	splitJ, err := baseeval.JudgeAll(splitImgs, r.scenes, r.det)
	if err != nil {
		return nil, err
	}
	var splitF [][]float64
	if err := r.w.Do(ctx, func() error {
		var err error
		if r.realF, err = baseeval.Classify(r.ev, realJ); err != nil {
			return err
		}
		splitF, err = baseeval.Classify(r.ev, splitJ)
		return err
	}); err != nil {
		return nil, err
	}
	rep.RealAccuracy = classAccuracy(realJ)
	rep.RealFrechet = frechetOrNil(splitF, r.realF)

	all := append([]Setting{{Cache: stepcache.Config{Name: "none"}}}, o.Settings...)
	rows := make([]StepCacheRow, len(all))
	for i, s := range all {
		fmt.Fprintf(r.progress, "bench stepcache: quality %d/%d: %s\n", i+1, len(all), s.Label())
		if rows[i], err = r.quality(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Label(), err)
		}
	}
	if err := r.timing(ctx, all, rows); err != nil {
		return nil, err
	}
	rep.Reference, rep.Rows = rows[0], rows[1:]
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// sample generates images [from, to) of the prompt set under s; the policy of each request is fresh.
func (r *stepCacheRun) sample(ctx context.Context, s Setting, from, to int) (*model.SampleResult, stepcache.Stats, error) {
	steps := s.StepsOr(r.o.Steps)
	req := model.SampleRequest{Seed: r.o.Seed, Steps: steps, Guidance: r.o.Guidance, CleanRenorm: r.o.CleanRenorm,
		Noise: baseeval.Noise(r.o.Seed, from, to-from, scene.CanvasPixels)}
	if r.m.Cfg.Cond == model.CondLabel { // a random-weight preset: labels instead of prompts, seeded noise
		req.Noise = nil
		for i := from; i < to; i++ {
			req.Labels = append(req.Labels, i%r.m.Cfg.NumClasses)
		}
	} else {
		for _, sc := range r.scenes[from:to] {
			req.Prompts = append(req.Prompts, scene.Format(sc))
		}
	}
	var policy stepcache.Policy
	if !s.Baseline() {
		var err error
		if policy, err = stepcache.New(r.cals.Apply(s.Cache), r.m.Cfg.Depth); err != nil {
			return nil, stepcache.Stats{}, err
		}
		req.Cache = policy
	}
	var res *model.SampleResult
	err := r.w.Do(ctx, func() error {
		var err error
		res, err = r.m.Sample(ctx, req)
		return err
	})
	if err != nil {
		return nil, stepcache.Stats{}, err
	}
	st := stepcache.Stats{Steps: steps, ComputeFraction: 1}
	if policy != nil {
		st = policy.Stats()
	}
	return res, st, nil
}

func (r *stepCacheRun) quality(ctx context.Context, s Setting) (StepCacheRow, error) {
	row := StepCacheRow{Label: s.Label(), Setting: s}
	n, per := len(r.scenes), scene.CanvasPixels
	px := make([][]float32, 0, n)
	var units, computed float64
	for from := 0; from < n; from += r.o.Batch {
		to := min(n, from+r.o.Batch)
		res, st, err := r.sample(ctx, s, from, to)
		if err != nil {
			return row, err
		}
		for i := range res.N {
			px = append(px, res.Pixels[i*per:(i+1)*per])
		}
		all := st.Computed + st.Reused + st.Forecast
		units += float64(all)
		computed += float64(st.Computed)
		row.Computed += st.Computed
		row.Reused += st.Reused
		row.Forecast += st.Forecast
		row.ExtraMiB = max(row.ExtraMiB, float64(st.ExtraBytes)/(1<<20))
	}
	// Relative to the reference's steps: a policy at fewer steps saves on both counts.
	row.ComputeFraction = float64(s.StepsOr(r.o.Steps)) / float64(r.o.Steps)
	if !s.Baseline() && units > 0 {
		row.ComputeFraction *= computed / units
	}
	if r.refPx == nil {
		r.refPx = px
	}
	var err error
	// Model units span −1…1: peak 2.
	if row.PSNR, err = eval.MeanPSNR(r.refPx, px, 2); err != nil {
		return row, err
	}
	if row.SSIM, err = eval.MeanSSIM(r.refPx, px, scene.CanvasSide, scene.CanvasSide, 2); err != nil {
		return row, err
	}
	imgs := make([][scene.CanvasPixels]uint8, len(px))
	for i, p := range px {
		if imgs[i], err = scene.FromModelUnits(p); err != nil {
			return row, err
		}
	}
	js, err := baseeval.JudgeAll(imgs, r.scenes, r.det)
	if err != nil {
		return row, err
	}
	var feats [][]float64
	if err := r.w.Do(ctx, func() error {
		feats, err = baseeval.Classify(r.ev, js)
		return err
	}); err != nil {
		return row, err
	}
	row.ClassAccuracy = classAccuracy(js)
	row.Frechet = frechetOrNil(feats, r.realF)
	return row, nil
}

// timing runs Repeats rounds; each round times one request of TimingImages per setting, in order, so
// drifts of the machine's speed hit every setting alike. Speed-ups are ratios of medians.
func (r *stepCacheRun) timing(ctx context.Context, all []Setting, rows []StepCacheRow) error {
	n := min(r.o.TimingImages, len(r.scenes))
	times := make([][]time.Duration, len(all))
	for round := range r.o.Repeats {
		for i, s := range all {
			start := time.Now()
			if _, _, err := r.sample(ctx, s, 0, n); err != nil {
				return fmt.Errorf("%s: %w", s.Label(), err)
			}
			times[i] = append(times[i], time.Since(start))
		}
		fmt.Fprintf(r.progress, "bench stepcache: timing round %d/%d done\n", round+1, r.o.Repeats)
	}
	ref := median(times[0]).Seconds()
	for i := range rows {
		rows[i].MedianSeconds = median(times[i]).Seconds()
		rows[i].SpeedUp = ref / rows[i].MedianSeconds
	}
	return nil
}

func classAccuracy(js []baseeval.Judgement) float64 {
	ok := 0
	for i := range js {
		if js[i].ClassCorrect() {
			ok++
		}
	}
	return float64(ok) / float64(max(1, len(js)))
}

func frechetOrNil(a, b [][]float64) *float64 {
	v, err := eval.FrechetDistance(a, b)
	if err != nil {
		return nil
	}
	return &v
}

func fileSum(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", cachet.Wrap(cachet.CodeInvalidArgument, err, "cannot read weights %s; train them with 'cachet train base'", path)
	}
	return featurecache.WeightsID(path)
}
