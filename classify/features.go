package classify

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// DefaultBlocks are the blocks whose inputs make a classification feature, pooled over a DefaultGrid ×
// DefaultGrid grid. Chosen on the shipped weights (README, "Classification"): blocks 3–5 beat block 2 by
// about 3 points zero-shot and 1 point with 16 labelled images per class; of those, block 5 propagates 16
// labels per class best on held-out training images (20 paired draws: +0.25 ± 0.04 points over block 4).
// The last block's output, what the final layer reads, is 0.5 points worse again.
var DefaultBlocks = []int{5}

// DefaultTRef is the extraction pass's model time (the shared pass's t = 0.01).
const DefaultTRef = 10

// DefaultGrid is the pooling grid per block (PoolGrid). The layout is much of a Fashion-MNIST class: a
// global mean loses what tells a shirt from a pullover (block study on a training snapshot,
// docs/studies/classify-block-study: zero-shot 25 % → 59 % from 1×1 to 4×4), and on the shipped weights
// every token of the default model's 8×8 (16,384 values, kept as real[]) adds 1.7 points zero-shot and 1.5
// with 16 labelled images per class over 4×4 regions, for 4× the storage and 15 % less throughput.
const DefaultGrid = 8

// Featurizer turns canvases into classification features: one extraction pass, then the pooled, L2-
// normalised mean of the configured blocks' input tokens.
type Featurizer struct {
	ex       *featurecache.Extractor
	blocks   []int
	grid     int
	recenter bool      // canvases pass through images.Recenter first
	turns    []float64 // degrees: a feature is the mean over copies turned by each (test-time augmentation)
	sampler  string    // the weights that sample the head's prototypes, when not the feature pass's own
}

// NewFeaturizer prepares the pass for blocks (ascending) at model time tRef on the model's worker, pooled
// over a grid×grid partition of the tokens (PoolGrid).
func NewFeaturizer(w *model.Worker, dit *model.DiT, modelID string, blocks []int, grid int, tRef float64, maxBatch int) (*Featurizer, error) {
	ex, err := featurecache.NewExtractor(w, dit, modelID, featurecache.Config{Blocks: slices.Clone(blocks), TRef: tRef, MaxBatch: maxBatch})
	if err != nil {
		return nil, err
	}
	side := int(math.Round(math.Sqrt(float64(dit.Cfg.Tokens()))))
	if grid < 1 || side*side != dit.Cfg.Tokens() || side%grid != 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: a %d×%d pooling grid does not divide the model's %d×%d tokens", grid, grid, side, side)
	}
	return &Featurizer{ex: ex, blocks: slices.Clone(blocks), grid: grid}, nil
}

// NewFeaturizerFor is the feature pass a service with cfg runs.
func NewFeaturizerFor(w *model.Worker, dit *model.DiT, modelID string, cfg Config) (*Featurizer, error) {
	z, err := NewFeaturizer(w, dit, modelID, cfg.Blocks, cfg.Grid, cfg.TRef, cfg.MaxBatch)
	if err != nil {
		return nil, err
	}
	z.recenter = cfg.Recenter
	if len(cfg.Turns) > MaxTurns {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: at most %d turns (got %d)", MaxTurns, len(cfg.Turns))
	}
	for _, deg := range cfg.Turns {
		if math.IsNaN(deg) || deg < -180 || deg > 180 {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: a turn must be −180…180 degrees (got %v)", deg)
		}
	}
	z.turns = slices.Clone(cfg.Turns)
	return z, nil
}

// Key names the feature space of canvases: features with different keys are never compared.
func (z *Featurizer) Key() string {
	if z.recenter {
		return z.PrototypeKey() + "/recentred-v2" // v2: items cut by their frame are moved back, not stretched
	}
	return z.PrototypeKey()
}

// PrototypeKey names the feature space of images in model units (the zero-shot head's own samples), which
// the canvases' preprocessing does not touch.
func (z *Featurizer) PrototypeKey() string {
	parts := make([]string, len(z.blocks))
	for i, b := range z.blocks {
		parts[i] = fmt.Sprint(b)
	}
	key := fmt.Sprintf("%s/b%s/g%d/t%g", z.ex.ModelID(), strings.Join(parts, ","), z.grid, z.ex.Config().TRef)
	if z.sampler != "" {
		key += "/samples-" + z.sampler
	}
	if len(z.turns) > 0 {
		turns := make([]string, len(z.turns))
		for i, deg := range z.turns {
			turns[i] = fmt.Sprint(deg)
		}
		key += "/turns" + strings.Join(turns, ",")
	}
	return key
}

// ModelID names the weights.
func (z *Featurizer) ModelID() string { return z.ex.ModelID() }

// Blocks are the pooled blocks.
func (z *Featurizer) Blocks() []int { return slices.Clone(z.blocks) }

// Dims is the feature size.
func (z *Featurizer) Dims(width int) int { return len(z.blocks) * z.grid * z.grid * width }

// MaxTurns bounds Config.Turns: each turn is one more extraction pass per image.
const MaxTurns = 8

// Features extracts and pools images given in model units; with turns, each image's feature is the
// normalised mean over its turned copies.
func (z *Featurizer) Features(ctx context.Context, imgs [][]float32) ([][]float32, error) {
	if len(z.turns) == 0 {
		return z.pooled(ctx, imgs)
	}
	channels, side := z.ex.ImageShape()
	plane := side * side
	turned := make([][]float32, 0, len(imgs)*len(z.turns))
	for i, img := range imgs {
		if per := z.ex.ImagePixels(); len(img) != per { // checked before turning, as Extract checks after
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "image %d has %d values, want %d", i, len(img), per)
		}
		for _, deg := range z.turns {
			if deg == 0 {
				turned = append(turned, img)
				continue
			}
			t := make([]float32, 0, len(img))
			for c := range channels { // −1 is black, the canvases' background
				t = append(t, images.Turn(img[c*plane:(c+1)*plane], side, deg*math.Pi/180, -1)...)
			}
			turned = append(turned, t)
		}
	}
	fs, err := z.pooled(ctx, turned)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(imgs))
	for i := range imgs {
		out[i] = Normalize(Mean(fs[i*len(z.turns) : (i+1)*len(z.turns)]))
	}
	return out, nil
}

func (z *Featurizer) pooled(ctx context.Context, images [][]float32) ([][]float32, error) {
	fs, err := z.ex.Extract(ctx, images)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(fs))
	for i, f := range fs {
		if out[i], err = PoolGrid(f, z.blocks, z.grid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Canvases extracts features of 32×32 grayscale canvases.
func (z *Featurizer) Canvases(ctx context.Context, canvases [][]uint8) ([][]float32, error) {
	imgs := make([][]float32, len(canvases))
	for i, c := range canvases {
		if z.recenter && len(c) == scene.CanvasPixels {
			rc := images.Recenter((*[scene.CanvasPixels]uint8)(c))
			c = rc[:]
		}
		imgs[i] = scene.ModelUnits(c)
	}
	return z.Features(ctx, imgs)
}

// ItemCanvas renders a Fashion-MNIST item as the model sees a canonical item (large, centred).
func ItemCanvas(item *[scene.ItemPixels]uint8) ([]uint8, error) {
	c, err := scene.Render(item, scene.Scene{Large: true})
	if err != nil {
		return nil, err
	}
	return c[:], nil
}

// HeadConfig says how class prototypes are sampled: Samples images of "a large {label}" per label,
// Steps sampler steps at Guidance, from Seed.
type HeadConfig struct {
	Samples  int
	Steps    int
	Guidance float64
	Seed     int64
}

// DefaultHeadConfig: 32 images per class at 20 flow steps and guidance 2 (cachet.ClassifyConfig's
// PrototypeGuidance says why).
func DefaultHeadConfig() HeadConfig { return HeadConfig{Samples: 32, Steps: 20, Guidance: 2, Seed: 1} }

// Validate checks the sampling settings.
func (c HeadConfig) Validate() error {
	switch {
	case c.Samples < 1 || c.Samples > 512:
		return cachet.Errorf(cachet.CodeInvalidArgument, "prototype samples per class must be 1…512 (got %d)", c.Samples)
	case c.Steps < 1 || c.Steps > model.MaxSteps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "prototype steps must be 1…%d (got %d)", model.MaxSteps, c.Steps)
	case c.Guidance < 0 || c.Guidance > 50:
		return cachet.Errorf(cachet.CodeInvalidArgument, "prototype guidance must be 0…50 (got %v)", c.Guidance)
	}
	return nil
}

// Key names the sampling settings (prototypes are cached under it).
func (c HeadConfig) Key() string {
	return fmt.Sprintf("m%d/s%d/g%g/seed%d", c.Samples, c.Steps, c.Guidance, c.Seed)
}

// LabelPrompt is the prompt whose samples stand for a label, or ok = false when the model cannot draw it.
// Models trained on Cachet's scenes understand "a large {class}"; other text models need every word of
// the prompt in their vocabulary.
func LabelPrompt(cfg model.Config, label string) (string, bool) {
	if cfg.Cond != model.CondText {
		return "", false
	}
	prompt := "a large " + strings.ToLower(strings.TrimSpace(label))
	if slices.Equal(cfg.Vocabulary, scene.Vocabulary()) {
		s, err := scene.Parse(prompt)
		if err != nil || !s.Large {
			return "", false
		}
		return scene.Format(s), true
	}
	for _, w := range strings.Fields(prompt) {
		if !slices.Contains(cfg.Vocabulary, w) {
			return "", false
		}
	}
	return prompt, true
}

// LabelPrompts is each label's LabelPrompt for the diffusion classifier, or an error naming the labels
// the model cannot draw.
func LabelPrompts(cfg model.Config, labels []string) ([]string, error) {
	prompts := make([]string, len(labels))
	var bad []string
	for c, l := range labels {
		p, ok := LabelPrompt(cfg, l)
		if !ok {
			bad = append(bad, fmt.Sprintf("%q", l))
		}
		prompts[c] = p
	}
	if len(bad) > 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the diffusion classifier scores each label by drawing it, and the model cannot draw %s; classify without it",
			strings.Join(bad, ", "))
	}
	return prompts, nil
}

// prototypeChunk is how many prototype images one worker job samples.
const prototypeChunk = 8

// SamplePrototype samples cfg.Samples images of prompt with the model and returns the mean of their
// features (a raw prototype).
func SamplePrototype(ctx context.Context, w *model.Worker, dit *model.DiT, z *Featurizer, prompt string, cfg HeadConfig) ([]float64, error) {
	fs, err := SampleFeatures(ctx, w, dit, z, prompt, cfg)
	if err != nil {
		return nil, err
	}
	return Mean(fs), nil
}

// SampleFeatures samples cfg.Samples images of prompt with the model (seeded by cfg) and returns their
// features.
func SampleFeatures(ctx context.Context, w *model.Worker, dit *model.DiT, z *Featurizer, prompt string, cfg HeadConfig) ([][]float32, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Small requests, one worker job each: generation and extraction requests queue behind one chunk, not
	// behind a whole class (the server warms the head in the background).
	imgs := make([][]float32, 0, cfg.Samples)
	for chunk := 0; len(imgs) < cfg.Samples; chunk++ {
		n := min(prototypeChunk, cfg.Samples-len(imgs))
		req := model.SampleRequest{Prompts: slices.Repeat([]string{prompt}, n), Seed: cfg.Seed*1000 + int64(chunk),
			Steps: cfg.Steps, Guidance: cfg.Guidance}
		chunkImgs, err := SampleImages(ctx, w, dit, req)
		if err != nil {
			return nil, fmt.Errorf("classify: sampling %q: %w", prompt, err)
		}
		imgs = append(imgs, chunkImgs...)
	}
	return z.Features(ctx, imgs)
}

// SampleImages runs one sampling request on the worker and returns its images in model units, clamped to
// −1…1 where real inputs lie (the samples are fed back as features' inputs).
func SampleImages(ctx context.Context, w *model.Worker, dit *model.DiT, req model.SampleRequest) ([][]float32, error) {
	var res *model.SampleResult
	if err := w.Do(ctx, func() error {
		var err error
		res, err = dit.Sample(ctx, req)
		return err
	}); err != nil {
		return nil, err
	}
	per := res.C * res.H * res.W
	imgs := make([][]float32, res.N)
	for i := range imgs {
		img := res.Pixels[i*per : (i+1)*per]
		for k, v := range img {
			img[k] = min(1, max(-1, v))
		}
		imgs[i] = img
	}
	return imgs, nil
}
