// Package generate is the generation service shared by the API and the CLI: it validates a request
// (prompt, count, steps, guidance, step-cache policy), injects a subject's reference features through the
// adapters when asked, samples on the model's worker and reports timings and cache statistics.
package generate

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// Personalizer injects a subject's reference features into sampling: the seam to the DreamCache adapters
// (adapters.Set implements it). Hooks runs on the model's worker right before sampling; it checks refs
// against the adapters (model, t_ref, blocks: a domain error when they do not fit) and returns the
// request's injection; release runs on the worker right after sampling and frees what Hooks made.
type Personalizer interface {
	Hooks(refs *featurecache.Features, g model.ReferenceGuidance) (inj *model.Injection, release func(), err error)
}

// ErrNoAdapters is the answer to a personalized request when no adapters are loaded.
var ErrNoAdapters = cachet.Errorf(cachet.CodeUnavailable, "no adapters loaded, so subjects cannot be used yet; train them with `cachet train adapters` (generation without a subject works)")

// Options configure the service.
type Options struct {
	// ModelID names the weights (featurecache.WeightsID); reference caches must carry it.
	ModelID string
	// Personalizer is nil when no adapters are loaded.
	Personalizer Personalizer
	// Calibrations are the model's step-cache profiles (MagCache), applied to requests that need one.
	Calibrations stepcache.Calibrations
	// DefaultCache is the policy of requests that name none.
	DefaultCache stepcache.Config
	// DefaultDetail is the full-size redraw of requests that name none, for models that draw Cachet's
	// scenes and requests without a subject (zero value: none).
	DefaultDetail Detail
	// MaxImages bounds a request's N (default 16); MaxSteps its steps (default model.MaxSteps).
	MaxImages, MaxSteps int
	// BatchImages, above 1, lets requests that wait for the model share a sampler batch of up to that many
	// images (plain text-to-image without a step cache); 0 or 1 runs each alone.
	BatchImages int
}

// Service generates images with one model on its worker.
type Service struct {
	worker *model.Worker
	dit    *model.DiT
	opts   Options
	batch  *batcher // nil: no batching
}

// DefaultMaxImages bounds a request's N when Options name no bound.
const DefaultMaxImages = 16

// New builds the service for a loaded model.
func New(w *model.Worker, m *model.DiT, opts Options) *Service {
	if opts.MaxImages <= 0 {
		opts.MaxImages = DefaultMaxImages
	}
	if opts.MaxSteps <= 0 || opts.MaxSteps > model.MaxSteps {
		opts.MaxSteps = model.MaxSteps
	}
	s := &Service{worker: w, dit: m, opts: opts}
	if opts.BatchImages > 1 {
		s.batch = &batcher{s: s, maxImages: opts.BatchImages}
	}
	return s
}

// BatchStats counts the sampler batches run and the requests they carried (zero without batching).
func (s *Service) BatchStats() BatchStats {
	if s.batch == nil {
		return BatchStats{}
	}
	return s.batch.stats()
}

// ModelID names the model's weights.
func (s *Service) ModelID() string { return s.opts.ModelID }

// Personalized reports whether adapters are loaded.
func (s *Service) Personalized() bool { return s.opts.Personalizer != nil }

// DefaultNegativeGuidance is the negative prompt's scale when a request names none.
const DefaultNegativeGuidance = 1.0

// Request is one generation.
type Request struct {
	Prompt string // text-conditioned models
	Label  int    // label-conditioned models
	// Refs is a subject's reference cache (nil: plain text-to-image).
	Refs *featurecache.Features
	N    int
	Seed int64
	// Speed names a speed preset (cachet.SpeedPresets), which sets Steps and Cache; "" leaves them as given.
	Speed    string
	Steps    int
	Guidance float64
	// GuidanceRescale is model.SampleRequest's φ (0 = off).
	GuidanceRescale float64
	// CleanRenorm is model.SampleRequest's clean-image renormalisation φ (0 = off).
	CleanRenorm float64
	// NegativePrompt (text models, no Refs) is pushed away from at NegativeGuidance; "" is none.
	NegativePrompt   string
	NegativeGuidance float64
	// ReferenceGuidance says which guidance branches see Refs (zero value: joint).
	ReferenceGuidance model.ReferenceGuidance
	Cache             stepcache.Config
	// Detail redraws a small scene's item at full size (scene models, no Refs); nil: Options.DefaultDetail
	// where it applies, else none.
	Detail *Detail
	// Progress, when set, hears step of Steps after each sampler step (draft and redraws together).
	Progress func(step, steps int)
}

// Result is what a generation produced.
type Result struct {
	*model.SampleResult
	// Prompt is the canonical form of the request's prompt (or "class N" for label models).
	Prompt string
	// Queue is the wait for the model's worker; Sampling the sampler's own time.
	Queue, Sampling time.Duration
	Cache           stepcache.Stats
	Personalized    bool
	// Detail is the full-size redraw's start time the images got (0: none).
	Detail float64
	// Speed is the speed preset that chose the steps and the policy ("" when the request chose them).
	Speed string
	// BatchSize is how many requests shared the sampler batch (1: alone).
	BatchSize int
}

// Validate checks a request without running it and fills its defaults (1 image, the default speed preset
// or cachet.DefaultSteps).
func (s *Service) Validate(req *Request) error {
	if req.N == 0 {
		req.N = 1
	}
	if err := s.resolveSpeed(req); err != nil {
		return err
	}
	if req.Steps == 0 {
		req.Steps = cachet.DefaultSteps
	}
	switch {
	case req.N < 1 || req.N > s.opts.MaxImages:
		return cachet.Errorf(cachet.CodeInvalidArgument, "n must be between 1 and %d (got %d)", s.opts.MaxImages, req.N)
	case req.Steps < 1 || req.Steps > s.opts.MaxSteps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "steps must be between 1 and %d (got %d)", s.opts.MaxSteps, req.Steps)
	case req.Guidance < 0 || req.Guidance > 50 || req.Guidance != req.Guidance:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance must be between 0 and 50 (got %v); 1 turns it off", req.Guidance)
	case req.GuidanceRescale < 0 || req.GuidanceRescale > 1 || req.GuidanceRescale != req.GuidanceRescale:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance_rescale must be between 0 (off) and 1 (got %v)", req.GuidanceRescale)
	case req.CleanRenorm < 0 || req.CleanRenorm > 1 || req.CleanRenorm != req.CleanRenorm:
		return cachet.Errorf(cachet.CodeInvalidArgument, "clean_renorm must be between 0 (off) and 1 (got %v)", req.CleanRenorm)
	case req.NegativeGuidance < 0 || req.NegativeGuidance > 50 || req.NegativeGuidance != req.NegativeGuidance:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative_guidance must be between 0 and 50 (got %v)", req.NegativeGuidance)
	}
	if err := s.validateNegative(req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Cache.Name) == "" {
		req.Cache = s.opts.DefaultCache
	}
	if err := req.Cache.Validate(); err != nil {
		return err
	}
	if s.dit.Cfg.Cond == model.CondText {
		p, err := CanonicalPrompt(s.dit.Cfg, req.Prompt)
		if err != nil {
			return err
		}
		req.Prompt = p
	} else if req.Label < 0 || req.Label >= s.dit.Cfg.NumClasses {
		return cachet.Errorf(cachet.CodeInvalidArgument, "this model is label-conditioned: give a label between 0 and %d", s.dit.Cfg.NumClasses-1)
	}
	if err := s.validateDetail(req); err != nil {
		return err
	}
	if req.Refs != nil {
		if s.opts.Personalizer == nil {
			return ErrNoAdapters
		}
		if req.Refs.Model != s.opts.ModelID {
			return cachet.Errorf(cachet.CodeConflict, "the reference cache was made by model %s, but this is model %s; extract it again with this model", req.Refs.Model, s.opts.ModelID)
		}
	}
	return nil
}

// validateDetail checks a request's own redraw: it needs the scenes of Cachet's default model and no subject.
// A request that names none gets detailFor's default, which never conflicts.
func (s *Service) validateDetail(req *Request) error {
	if req.Detail == nil {
		return nil
	}
	if err := req.Detail.Validate(); err != nil {
		return err
	}
	switch {
	case req.Detail.Strength == 0:
		return nil
	case !slices.Equal(s.dit.Cfg.Vocabulary, scene.Vocabulary()):
		return cachet.Errorf(cachet.CodeInvalidArgument, "detail redraws the scenes of Cachet's default model; this model draws none")
	case req.Refs != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "detail does not combine with a subject; leave one out")
	}
	return nil
}

// detailFor is the redraw a validated request gets: its own, else Options.DefaultDetail for a scene model
// without a subject, else none.
func (s *Service) detailFor(req Request) Detail {
	switch {
	case req.Detail != nil:
		return *req.Detail
	case req.Refs == nil && slices.Equal(s.dit.Cfg.Vocabulary, scene.Vocabulary()):
		return s.opts.DefaultDetail
	}
	return Detail{}
}

// validateNegative checks a negative prompt against the model's vocabulary (it need not be a whole scene).
func (s *Service) validateNegative(req *Request) error {
	req.NegativePrompt = strings.TrimSpace(req.NegativePrompt)
	if req.NegativePrompt == "" {
		return nil
	}
	switch {
	case s.dit.Cfg.Cond != model.CondText:
		return cachet.Errorf(cachet.CodeInvalidArgument, "this model is label-conditioned and reads no negative prompt")
	case req.Refs != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative_prompt does not combine with a subject; leave one out")
	}
	if err := s.dit.CheckWords(req.NegativePrompt); err != nil {
		var e *cachet.Error
		if errors.As(err, &e) {
			return cachet.Errorf(e.Code, "negative_prompt: %s", e.Message)
		}
		return err
	}
	return nil
}

// CanonicalPrompt checks a prompt against the model's grammar: for models trained on Cachet's scenes the
// scene grammar parses it (and names what is wrong); other text models check their vocabulary when run.
func CanonicalPrompt(cfg model.Config, prompt string) (string, error) {
	if strings.TrimSpace(prompt) == "" {
		return "", cachet.Errorf(cachet.CodeInvalidArgument, "the prompt is empty; e.g. %q", "a small sneaker on the left")
	}
	if slices.Equal(cfg.Vocabulary, scene.Vocabulary()) {
		sc, err := scene.Parse(prompt)
		if err != nil {
			return "", err
		}
		return scene.Format(sc), nil
	}
	return prompt, nil
}

// Generate validates and runs a request.
func (s *Service) Generate(ctx context.Context, req Request) (*Result, error) {
	if err := s.Validate(&req); err != nil {
		return nil, err
	}
	if s.batchable(req) {
		return s.batch.generate(ctx, req)
	}
	cacheCfg := s.opts.Calibrations.Apply(req.Cache)
	res := &Result{Personalized: req.Refs != nil, Prompt: req.Prompt, BatchSize: 1, Speed: req.Speed}
	queued := time.Now()
	err := s.worker.Do(ctx, func() error {
		res.Queue = time.Since(queued)
		policy, err := stepcache.New(cacheCfg, s.dit.Cfg.Depth)
		if err != nil {
			return err
		}
		sreq := model.SampleRequest{Seed: req.Seed, Steps: req.Steps, Guidance: req.Guidance, GuidanceRescale: req.GuidanceRescale, CleanRenorm: req.CleanRenorm, Cache: policy}
		if s.dit.Cfg.Cond == model.CondText {
			sreq.Prompts = slices.Repeat([]string{req.Prompt}, req.N)
			if req.NegativePrompt != "" {
				sreq.NegativePrompts = slices.Repeat([]string{req.NegativePrompt}, req.N)
				sreq.NegativeGuidance = req.NegativeGuidance
			}
		} else {
			sreq.Labels = slices.Repeat([]int{req.Label}, req.N)
			res.Prompt = "class " + strconv.Itoa(req.Label)
		}
		if req.Refs != nil {
			inj, release, err := s.opts.Personalizer.Hooks(req.Refs, req.ReferenceGuidance)
			if err != nil {
				return err
			}
			defer release()
			sreq.Inject = inj
		}
		sreq.OnStep = stepProgress(&req)
		detail := s.detailFor(req)
		sc, redraws := redrawnScene(req.Prompt, detail)
		if redraws {
			sreq.Steps = detail.DraftSteps(req.Steps)
			res.Detail = detail.Strength
		}
		start := time.Now()
		out, err := s.dit.Sample(ctx, sreq)
		res.Cache = policy.Stats()
		res.SampleResult = out
		if err == nil && redraws {
			err = s.redraw(ctx, detail, sc, sreq, out)
		}
		res.Sampling = time.Since(start)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// redrawnScene is the scene of a validated prompt whose images get detail's redraw, and whether they do:
// a small scene's do (a large item is drawn at full size already).
func redrawnScene(prompt string, detail Detail) (scene.Scene, bool) {
	if detail.Strength == 0 {
		return scene.Scene{}, false
	}
	sc, err := scene.Parse(prompt)
	return sc, err == nil && !sc.Large
}

// redraw applies d to out, scene's images sampled from sreq, in place (on the worker's thread).
func (s *Service) redraw(ctx context.Context, d Detail, sc scene.Scene, sreq model.SampleRequest, out *model.SampleResult) error {
	imgs, err := scene.CanvasesFromModelUnits(out.Pixels)
	if err != nil {
		return err
	}
	sample := func(r model.SampleRequest) (*model.SampleResult, error) { return s.dit.Sample(ctx, r) }
	if err := RedrawSmall(sample, sreq, d, slices.Repeat([]scene.Scene{sc}, len(imgs)), imgs, nil); err != nil {
		return err
	}
	per := scene.CanvasPixels
	for i := range imgs {
		scene.PutModelUnits(out.Pixels[i*per:], imgs[i][:])
	}
	return nil
}

// Tiles maps each image to [0, 1] grayscale (the mean over channels for latent-space models).
func (r *Result) Tiles() [][]float32 {
	per := r.H * r.W
	tiles := make([][]float32, r.N)
	for i := range tiles {
		tile := make([]float32, per)
		for c := range r.C {
			for p := range per {
				tile[p] += r.Pixels[(i*r.C+c)*per+p] / float32(r.C)
			}
		}
		for p := range tile {
			tile[p] = min(1, max(0, (tile[p]+1)/2))
		}
		tiles[i] = tile
	}
	return tiles
}

// PNGs encodes each image as a grayscale PNG.
func (r *Result) PNGs() ([][]byte, error) {
	out := make([][]byte, r.N)
	for i, tile := range r.Tiles() {
		img := image.NewGray(image.Rect(0, 0, r.W, r.H))
		for p, v := range tile {
			img.Pix[p] = uint8(v*255 + 0.5)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, err
		}
		out[i] = buf.Bytes()
	}
	return out, nil
}

// stepProgress counts sampler steps (the draft's and the redraws' together) and reports them to each
// request's Progress, capped at its step count.
func stepProgress(reqs ...*Request) func() {
	done := 0
	return func() {
		done++
		for _, r := range reqs {
			if r.Progress != nil {
				r.Progress(min(done, r.Steps), r.Steps)
			}
		}
	}
}
