// Package featurecache owns DreamCache-style reference caches: the extraction pass (one null-condition
// denoiser forward at a small time, capturing the input hidden states of chosen blocks), the cache codec
// and an in-memory LRU of decoded caches. Classification reuses the same pass.
package featurecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// Config says which blocks a cache holds and at which model time the reference is seen.
type Config struct {
	// Blocks are the blocks whose input hidden states are captured, ascending.
	Blocks []int
	// TRef is the model time of the pass (flow models: 1000·t). DreamCache uses a near-clean time so the
	// features describe the reference itself; the clean image is fed as is.
	TRef float64
	// MaxBatch bounds how many images one forward takes (memory).
	MaxBatch int
	// Views is how each reference is seen: 1 (or 0) the image as given; n > 1 also its small views
	// (scene.SmallView) at the first n−1 of scene.Positions() (centre, left, right, top, bottom), whose
	// tokens follow the first view's in that order. Adapters are trained for one setting.
	Views int
}

// MaxViews is the most views a reference cache holds: the canonical one and a small one at every position.
const MaxViews = 1 + scene.NumPositions

// NumViews is Views with the zero value read as 1.
func (c Config) NumViews() int { return max(1, c.Views) }

// DefaultConfig captures every block at model time 10 (t = 0.01).
func DefaultConfig(m *model.DiT) Config {
	blocks := make([]int, m.Cfg.Depth)
	for i := range blocks {
		blocks[i] = i
	}
	return Config{Blocks: blocks, TRef: 10, MaxBatch: 64}
}

// Validate checks the config against the model it will run on.
func (c Config) Validate(m *model.DiT) error {
	if len(c.Blocks) == 0 {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: no blocks configured")
	}
	for i, b := range c.Blocks {
		if b < 0 || b >= m.Cfg.Depth {
			return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: block %d outside the model's 0…%d", b, m.Cfg.Depth-1)
		}
		if i > 0 && b <= c.Blocks[i-1] {
			return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: blocks must be ascending and distinct (got %v)", c.Blocks)
		}
	}
	if c.TRef < 0 || c.TRef > 1000 || math.IsNaN(c.TRef) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: t_ref %v outside 0…1000", c.TRef)
	}
	if c.MaxBatch <= 0 {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: max batch must be positive")
	}
	if c.Views < 0 || c.Views > MaxViews {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: %d views per reference; 1 (the image) to %d (also its small views: centred, then left, right, top, bottom)", c.Views, MaxViews)
	}
	if c.NumViews() > 1 && (m.Cfg.ImageSize != scene.CanvasSide || m.Cfg.Channels != 1) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: the small view needs a %d×%d grayscale model, not %d×%d×%d",
			scene.CanvasSide, scene.CanvasSide, m.Cfg.Channels, m.Cfg.ImageSize, m.Cfg.ImageSize)
	}
	return nil
}

// Features is one image's cache: for each captured block, its input hidden states [Tokens, Width].
type Features struct {
	Model  string // id of the model that made it (weights checksum)
	Blocks []int
	TRef   float64
	// Views is how many views of each reference the tokens hold (Config.Views; 0 reads as 1, see
	// NumViews). A reference's views are consecutive: its first view's tokens, then its small views' in
	// Config.Views order.
	Views  int
	Tokens int
	Width  int
	Data   [][]float32 // one slice of Tokens·Width values per block, in Blocks order
}

// NumViews is Views with the zero value read as 1.
func (f *Features) NumViews() int { return max(1, f.Views) }

// Bytes is the decoded size of the cache.
func (f *Features) Bytes() int64 { return int64(len(f.Blocks)) * int64(f.Tokens*f.Width) * 4 }

// Block returns the hidden states of block b, or nil when the cache does not hold it.
func (f *Features) Block(b int) []float32 {
	i := slices.Index(f.Blocks, b)
	if i < 0 {
		return nil
	}
	return f.Data[i]
}

// Pooled returns the mean over the first view's tokens of each requested block, each L2-normalised,
// concatenated and normalised again: one unit vector of len(blocks)·Width values. Call it on one
// reference's cache (before Concat).
func (f *Features) Pooled(blocks []int) ([]float32, error) {
	tokens := f.Tokens / f.NumViews()
	out := make([]float32, 0, len(blocks)*f.Width)
	for _, b := range blocks {
		x := f.Block(b)
		if x == nil {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "feature cache holds blocks %v, not %d", f.Blocks, b)
		}
		mean := make([]float64, f.Width)
		for t := range tokens {
			row := x[t*f.Width : (t+1)*f.Width]
			for d, v := range row {
				mean[d] += float64(v)
			}
		}
		out = append(out, Unit(mean)...)
	}
	return normalize32(out), nil
}

// Unit returns v/‖v‖ as float32 (zeros when v is zero): the one normalisation of pooled features, shared by
// subjects and classification.
func Unit(v []float64) []float32 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	out := make([]float32, len(v))
	if ss == 0 {
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}

func normalize32(v []float32) []float32 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return Unit(w)
}

// Extractor runs extraction passes on a model's worker.
type Extractor struct {
	worker  *model.Worker
	dit     *model.DiT
	modelID string
	cfg     Config
}

// NewExtractor validates cfg for the model. modelID names the weights (a cache records it and is refused
// by any other model).
func NewExtractor(w *model.Worker, m *model.DiT, modelID string, cfg Config) (*Extractor, error) {
	if err := cfg.Validate(m); err != nil {
		return nil, err
	}
	return &Extractor{worker: w, dit: m, modelID: modelID, cfg: cfg}, nil
}

// Config returns the extractor's configuration.
func (e *Extractor) Config() Config { return e.cfg }

// ModelID names the model the extractor's caches belong to.
func (e *Extractor) ModelID() string { return e.modelID }

// ImageShape is an input image's channels and side.
func (e *Extractor) ImageShape() (channels, side int) { return e.dit.Cfg.Channels, e.dit.Cfg.ImageSize }

// ImagePixels is the number of values one input image has (C·H·W, model units ≈ −1…1).
func (e *Extractor) ImagePixels() int {
	channels, side := e.ImageShape()
	return channels * side * side
}

// Extract runs the pass over images (each ImagePixels values in model units) and returns one cache each,
// holding every configured view of its image.
func (e *Extractor) Extract(ctx context.Context, images [][]float32) ([]*Features, error) {
	per := e.ImagePixels()
	for i, img := range images {
		if len(img) != per {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "image %d has %d values, want %d", i, len(img), per)
		}
	}
	if e.cfg.NumViews() == 1 {
		return e.extract(ctx, images)
	}
	// One pass over every view: image i's views are rows nv·i … nv·i+nv−1.
	nv := e.cfg.NumViews()
	views := make([][]float32, 0, nv*len(images))
	for _, img := range images {
		views = append(views, img)
		for _, pos := range scene.Positions()[:nv-1] {
			small, err := smallView(img, pos)
			if err != nil {
				return nil, err
			}
			views = append(views, small)
		}
	}
	fs, err := e.extract(ctx, views)
	if err != nil {
		return nil, err
	}
	out := make([]*Features, len(images))
	for i := range out {
		if out[i], err = Concat(fs[nv*i : nv*(i+1)]); err != nil {
			return nil, err
		}
		out[i].Views = nv
	}
	return out, nil
}

// smallView is scene.SmallView in model units.
func smallView(img []float32, pos scene.Position) ([]float32, error) {
	canvas, err := scene.FromModelUnits(img)
	if err != nil {
		return nil, err
	}
	small, err := scene.SmallView(&canvas, pos)
	if err != nil {
		return nil, err
	}
	return scene.ModelUnits(small[:]), nil
}

// extract runs the pass over images, MaxBatch at a time, one view each.
func (e *Extractor) extract(ctx context.Context, images [][]float32) ([]*Features, error) {
	out := make([]*Features, 0, len(images))
	for start := 0; start < len(images); start += e.cfg.MaxBatch {
		if err := ctx.Err(); err != nil {
			return nil, cachet.Wrap(cachet.CodeCanceled, err, "extraction canceled")
		}
		batch := images[start:min(start+e.cfg.MaxBatch, len(images))]
		var fs []*Features
		err := e.worker.Do(ctx, func() error {
			var err error
			fs, err = e.extractBatch(batch)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

// extractBatch runs one forward on the worker. Only the blocks up to the last captured one run: the rest
// of the stack cannot change what was captured.
func (e *Extractor) extractBatch(images [][]float32) ([]*Features, error) {
	n := len(images)
	cfg := e.dit.Cfg
	tokens, width := cfg.Tokens(), cfg.Width
	fs := make([]*Features, n)
	for i := range fs {
		fs[i] = &Features{Model: e.modelID, Blocks: slices.Clone(e.cfg.Blocks), TRef: e.cfg.TRef, Views: 1,
			Tokens: tokens, Width: width, Data: make([][]float32, len(e.cfg.Blocks))}
	}
	x := make([]float32, 0, n*e.ImagePixels())
	t := make([]float64, n)
	null := make([]bool, n)
	for i, img := range images {
		x = append(x, img...)
		t[i] = e.cfg.TRef
		null[i] = true
	}
	in := model.EvalInput{X: x, T: t, Null: null}
	if cfg.Cond == model.CondText {
		in.Prompts = make([]string, n)
	} else {
		in.Labels = make([]int, n)
	}
	last := e.cfg.Blocks[len(e.cfg.Blocks)-1]
	capture := func(block int, h *model.Feature) error {
		vals, err := h.Values()
		if err != nil {
			return err
		}
		if len(vals) != n*tokens*width {
			return fmt.Errorf("featurecache: block %d gave %d values, want %d", block, len(vals), n*tokens*width)
		}
		k := slices.Index(e.cfg.Blocks, block)
		for i := range fs {
			fs[i].Data[k] = vals[i*tokens*width : (i+1)*tokens*width : (i+1)*tokens*width]
		}
		return nil
	}
	hooks := &model.Hooks{
		CaptureBlocks: e.cfg.Blocks,
		Capture:       capture,
		// The features are block inputs, so the stack stops before the last captured block: it, the rest
		// of the stack and the output are never needed (the final layer still runs on what is returned).
		Stack: func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
			in, err := run(0, last, x)
			if err != nil {
				return nil, err
			}
			return in, capture(last, in)
		},
	}
	if _, err := e.dit.Evaluate(in, hooks); err != nil {
		return nil, fmt.Errorf("featurecache: extraction pass: %w", err)
	}
	return fs, nil
}

// WeightsID names a weights file by content: the first 16 hex digits of its SHA-256. Caches and pooled
// features record it so features from another model version are never mixed in.
func WeightsID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("featurecache: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("featurecache: reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
