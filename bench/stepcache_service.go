package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/eval/personaleval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// Benchmark paths: the service's (generate.Service, detail redraw and subjects as served) or the bare
// sampler's (one model.Sample per request, the sampling flags as given).
const (
	PathService = "service"
	PathSampler = "sampler"
)

// DefaultServiceSettings are the fewer-steps baselines (spanning the policies' speed-ups) and the grid of
// step counts × policies: each whole-step, sublayer, token, block and guidance-branch policy alone (at the
// reference's 50 steps) and composed with 30, 20 and 13 steps.
var DefaultServiceSettings = "steps=40;steps=30;steps=25;steps=20;steps=17;steps=13;steps=10;steps=8;" +
	stepGrid([]string{"teacache", "magcache", "ertacache", "fora:interval=3", "taylorseer:interval=3,order=2", "hyca", "bac",
		"toca", "asymrnr", "profilingdit", "cfgcache", "cachet"}, []int{0, 30, 20, 13})

// stepGrid writes every policy at every step count (0: the reference's) as settings.
func stepGrid(policies []string, steps []int) string {
	var out []string
	for _, p := range policies {
		for _, n := range steps {
			if n == 0 {
				out = append(out, p)
			} else {
				out = append(out, fmt.Sprintf("%s@%d", p, n))
			}
		}
	}
	return strings.Join(out, ";")
}

// StepCacheServiceOptions configure the service-path run: every image comes from generate.Service.Generate
// with the request POST /v1/generate makes of a body naming only prompt, n, seed, steps, cache and subject.
type StepCacheServiceOptions struct {
	Weights, Adapters, Evaluator, DataDir string
	Prompts                               int // text-only prompts, spread over the evaluation set (small and large scenes)
	// Subjects are test-split items made subjects as `cachet eval personalization` picks them (their canonical
	// render is the reference, extracted in-process); each is generated under SubjectPrompts random scenes
	// of its class. 0: no subject group.
	Subjects, SubjectPrompts int
	Images                   int // n of every request
	Seed                     int64
	Steps                    int // the reference's: the service's default
	Repeats                  int // interleaved rounds; the first one's images are the quality pass
	Settings                 []Setting
	Progress                 io.Writer
	Threads                  int // recorded (the caller sets libtorch's threads)
}

// DefaultStepCacheServiceOptions is `cachet bench stepcache` without flags.
func DefaultStepCacheServiceOptions() StepCacheServiceOptions {
	s, _ := ParseSettings(DefaultServiceSettings)
	return StepCacheServiceOptions{Weights: "weights/base.safetensors", Adapters: adapters.DefaultPath,
		Evaluator: "weights/evaluator.safetensors", DataDir: dataset.DefaultDir, Prompts: 8, Subjects: 4, SubjectPrompts: 2,
		Images: 2, Seed: 1, Steps: 50, Repeats: 3, Settings: s}
}

func (o StepCacheServiceOptions) validate() error {
	switch {
	case o.Prompts < 0 || o.Prompts > baseeval.NumPrompts:
		return cachet.Invalid("--prompts must be between 0 and %d (got %d)", baseeval.NumPrompts, o.Prompts)
	case o.Subjects < 0 || o.Subjects > 1000 || o.SubjectPrompts < 1 || o.SubjectPrompts > 100:
		return cachet.Invalid("--subjects must be 0…1000 and --subject-prompts 1…100 (got %d, %d)", o.Subjects, o.SubjectPrompts)
	case o.Prompts == 0 && o.Subjects == 0:
		return cachet.Invalid("nothing to generate: give --prompts or --subjects")
	case o.Images < 1 || o.Images > 16:
		return cachet.Invalid("--images must be between 1 and 16, the service's limit (got %d)", o.Images)
	case o.Steps < 1 || o.Steps > model.MaxSteps:
		return cachet.Invalid("--steps must be between 1 and %d (got %d)", model.MaxSteps, o.Steps)
	case o.Repeats < 1:
		return cachet.Invalid("--repeats must be positive (got %d)", o.Repeats)
	case len(o.Settings) == 0:
		return cachet.Invalid("no settings to measure")
	}
	for _, s := range o.Settings {
		if s.Steps > o.Steps {
			return cachet.Invalid("setting %q has more steps than the reference's %d", s.Label(), o.Steps)
		}
	}
	return nil
}

// servicePrompt is one request's prompt and subject.
type servicePrompt struct {
	scene   scene.Scene
	refs    *featurecache.Features // nil: text-only
	subject int                    // test-split index; −1 without a subject
	seed    int64
}

type serviceGroup struct {
	name    string
	prompts []servicePrompt
}

// serviceSamples is what one setting produced for one group in the quality pass.
type serviceSamples struct {
	px                         [][]float32
	units                      float64 // full-step equivalents the sampler computed (draft × policy share + redraws)
	computed, reused, forecast int
	extra                      int64
	redrawn                    int // requests that got the detail redraw
}

type serviceRun struct {
	o        StepCacheServiceOptions
	svc      *generate.Service
	groups   []serviceGroup
	progress io.Writer
}

// StepCacheService runs the benchmark on the service path: Repeats interleaved rounds in which every
// setting generates every group's prompts (one request per prompt, as the API receives them); the first
// round's images are scored against the uncached reference's (PSNR, SSIM, evaluator class accuracy), the
// medians of the rounds' wall times give the speed-ups.
func StepCacheService(ctx context.Context, o StepCacheServiceOptions) (*StepCacheServiceReport, error) {
	began := time.Now()
	if err := o.validate(); err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	sum, err := fileSum(o.Weights)
	if err != nil {
		return nil, err
	}
	cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(o.Weights))
	if err != nil {
		return nil, err
	}
	for _, s := range o.Settings {
		if _, err := stepcache.New(cals.Apply(s.Cache), 1); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Label(), err)
		}
	}
	served, err := stepcache.ParseConfig(cachet.DefaultCachePolicy)
	if err != nil {
		return nil, err
	}
	train, err := dataset.Load(o.DataDir, dataset.Train)
	if err != nil {
		return nil, err
	}
	det := baseeval.NewMirrorDetector(train)
	train = nil
	var subjects []personaleval.Subject
	if o.Subjects > 0 {
		test, err := dataset.Load(o.DataDir, dataset.Test)
		if err != nil {
			return nil, err
		}
		if subjects, err = personaleval.Subjects(test, o.Subjects, o.SubjectPrompts, uint64(o.Seed)); err != nil {
			return nil, err
		}
	}

	models, err := baseeval.OpenModels(ctx, o.Weights, o.Evaluator)
	if err != nil {
		return nil, err
	}
	defer models.Close()
	w, dit := models.W, models.DiT
	if !dit.Cfg.IsTextGrayscale(scene.CanvasSide) || !slices.Equal(dit.Cfg.Vocabulary, scene.Vocabulary()) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s does not draw Cachet's scenes (%s); the service path needs the default model's kind", o.Weights, dit.Cfg)
	}
	opts := generate.Options{ModelID: sum, Calibrations: cals, DefaultCache: served,
		DefaultDetail: generate.Detail{Strength: cachet.DefaultDetail}}
	var set *adapters.Set
	defer w.Do(context.Background(), func() error {
		if set != nil {
			set.Close()
		}
		return nil
	})
	var refs []*featurecache.Features
	if len(subjects) > 0 {
		if _, err := os.Stat(o.Adapters); err != nil {
			return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "cannot read adapters %s; train them with 'cachet train adapters', or give --subjects 0", o.Adapters)
		}
		if err := w.Do(ctx, func() error {
			var err error
			set, err = adapters.Load(o.Adapters, dit, sum)
			return err
		}); err != nil {
			return nil, err
		}
		opts.Personalizer = set
		// Made the way an upload makes them: the adapters' cache config, one reference per extraction.
		ex, err := featurecache.NewExtractor(w, dit, sum, set.CacheConfig(dit))
		if err != nil {
			return nil, err
		}
		for _, s := range subjects {
			fs, err := ex.Extract(ctx, [][]float32{scene.ModelUnits(s.Reference[:])})
			if err != nil {
				return nil, err
			}
			refs = append(refs, fs[0])
		}
	}
	r := &serviceRun{o: o, svc: generate.New(w, dit, opts), progress: progress}
	seed := o.Seed
	if o.Prompts > 0 {
		g := serviceGroup{name: GroupText}
		for _, sc := range SpreadPrompts(o.Prompts) {
			g.prompts = append(g.prompts, servicePrompt{scene: sc, subject: -1, seed: seed})
			seed++
		}
		r.groups = append(r.groups, g)
	}
	if len(subjects) > 0 {
		g := serviceGroup{name: GroupSubject}
		for i, s := range subjects {
			for _, sc := range s.Scenes {
				g.prompts = append(g.prompts, servicePrompt{scene: sc, refs: refs[i], subject: s.Index, seed: seed})
				seed++
			}
		}
		r.groups = append(r.groups, g)
	}

	all := append([]Setting{{Cache: stepcache.Config{Name: "none"}}}, o.Settings...)
	samples, times, err := r.rounds(ctx, all)
	if err != nil {
		return nil, err
	}
	rep := &StepCacheServiceReport{Weights: o.Weights, WeightsID: sum, Model: dit.Cfg.String(), Steps: o.Steps,
		Images: o.Images, Repeats: o.Repeats, Threads: o.Threads, Detail: cachet.DefaultDetail, CleanRenorm: cachet.DefaultCleanRenorm,
		ServedDefault: served.String(), Seed: o.Seed}
	if set != nil {
		rep.Adapters = o.Adapters
	}
	for gi, g := range r.groups {
		rows, err := r.score(ctx, models, det, gi, all, samples, times)
		if err != nil {
			return nil, err
		}
		sg := ServiceGroup{Name: g.name, Guidance: cachet.DefaultGuidanceFor(g.name == GroupSubject), Redrawn: samples[0][gi].redrawn,
			Reference: rows[0], Rows: rows[1:]}
		for _, p := range g.prompts {
			sg.Prompts = append(sg.Prompts, scene.Format(p.scene))
			if p.subject >= 0 {
				sg.Subjects = append(sg.Subjects, p.subject)
			}
		}
		rep.Groups = append(rep.Groups, sg)
	}
	rep.Recommended = rep.Recommend(DefaultMinPSNR)
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// request is what POST /v1/generate makes of a body naming prompt, n, seed, steps, cache and (with refs) a
// subject (generate.Service.RequestFrom): guidance, clean renorm and detail are left to the served defaults.
func (r *serviceRun) request(s Setting, p servicePrompt) (generate.Request, error) {
	cache := s.Cache
	if s.policyName() == "none" {
		cache = stepcache.Config{Name: "none"} // named: a request naming none gets the served default
	}
	wire := cachet.GenerateRequest{Prompt: scene.Format(p.scene), N: r.o.Images, Seed: p.seed, Steps: s.StepsOr(r.o.Steps),
		Cache: cachet.CachePolicy{Name: cache.Name, Params: cache.Params}}
	if p.refs != nil {
		wire.SubjectID = "bench"
	}
	req, err := r.svc.RequestFrom(wire)
	req.Refs = p.refs
	return req, err
}

// rounds runs the interleaved rounds (settings in reverse order every other round, so neither end always
// meets a warmer machine) after one untimed warm-up request per group. samples[setting][group] holds the
// first round's images; times[setting][group] each round's wall time over the group's requests.
func (r *serviceRun) rounds(ctx context.Context, all []Setting) ([][]serviceSamples, [][][]time.Duration, error) {
	for _, g := range r.groups {
		req, err := r.request(all[0], g.prompts[0])
		if err == nil {
			_, err = r.svc.Generate(ctx, req)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	samples := make([][]serviceSamples, len(all))
	times := make([][][]time.Duration, len(all))
	for i := range all {
		samples[i] = make([]serviceSamples, len(r.groups))
		times[i] = make([][]time.Duration, len(r.groups))
	}
	for round := range r.o.Repeats {
		order := make([]int, len(all))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			for gi, g := range r.groups {
				start := time.Now()
				for _, p := range g.prompts {
					req, err := r.request(all[i], p)
					var res *generate.Result
					if err == nil {
						res, err = r.svc.Generate(ctx, req)
					}
					if err != nil {
						return nil, nil, fmt.Errorf("%s: %w", all[i].Label(), err)
					}
					if round == 0 {
						samples[i][gi].add(res, all[i].StepsOr(r.o.Steps))
					}
				}
				times[i][gi] = append(times[i][gi], time.Since(start))
			}
		}
		fmt.Fprintf(r.progress, "bench stepcache: service round %d/%d done (%d settings × %d requests)\n",
			round+1, r.o.Repeats, len(all), r.requests())
	}
	return samples, times, nil
}

func (r *serviceRun) requests() int {
	n := 0
	for _, g := range r.groups {
		n += len(g.prompts)
	}
	return n
}

// add keeps a request's images and counts its sampler compute: the draft's steps at the policy's compute
// share, plus the redraw's steps (never cached), as generate.Service splits a budget of steps.
func (s *serviceSamples) add(res *generate.Result, steps int) {
	per := res.C * res.H * res.W
	for i := range res.N {
		s.px = append(s.px, res.Pixels[i*per:(i+1)*per])
	}
	draft, redraw := steps, 0
	if res.Detail > 0 {
		s.redrawn++
		draft = generate.Detail{Strength: res.Detail}.DraftSteps(steps)
		redraw = model.ImageToImageSteps(res.Detail, draft)
	}
	s.units += float64(draft)*res.Cache.ComputeFraction + float64(redraw)
	s.computed += res.Cache.Computed
	s.reused += res.Cache.Reused
	s.forecast += res.Cache.Forecast
	s.extra = max(s.extra, res.Cache.ExtraBytes)
}

// score turns group gi's samples and times into one row per setting (the reference first).
func (r *serviceRun) score(ctx context.Context, models *baseeval.Models, det *baseeval.MirrorDetector, gi int,
	all []Setting, samples [][]serviceSamples, times [][][]time.Duration) ([]StepCacheRow, error) {
	g := r.groups[gi]
	var scenes []scene.Scene
	for _, p := range g.prompts {
		for range r.o.Images {
			scenes = append(scenes, p.scene)
		}
	}
	ref, refT := samples[0][gi], median(times[0][gi]).Seconds()
	rows := make([]StepCacheRow, len(all))
	for i, s := range all {
		x := samples[i][gi]
		med := median(times[i][gi]).Seconds()
		row := StepCacheRow{Label: s.Label(), Setting: s, ComputeFraction: x.units / ref.units,
			MedianSeconds: med / float64(len(g.prompts)), SpeedUp: refT / med, Computed: x.computed, Reused: x.reused,
			Forecast: x.forecast, ExtraMiB: float64(x.extra) / (1 << 20)}
		var err error
		// Model units span −1…1: peak 2.
		if row.PSNR, err = eval.MeanPSNR(ref.px, x.px, 2); err != nil {
			return nil, err
		}
		if row.SSIM, err = eval.MeanSSIM(ref.px, x.px, scene.CanvasSide, scene.CanvasSide, 2); err != nil {
			return nil, err
		}
		imgs := make([][scene.CanvasPixels]uint8, len(x.px))
		for k, p := range x.px {
			if imgs[k], err = scene.FromModelUnits(p); err != nil {
				return nil, err
			}
		}
		js, err := baseeval.JudgeAll(imgs, scenes, det)
		if err != nil {
			return nil, err
		}
		if err := models.W.Do(ctx, func() error {
			_, err := baseeval.Classify(models.Evaluator, js)
			return err
		}); err != nil {
			return nil, err
		}
		row.ClassAccuracy = classAccuracy(js)
		rows[i] = row
	}
	return rows, nil
}
