package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// AdaptersConfig configures `cachet train adapters`.
type AdaptersConfig struct {
	Common
	Base     string // frozen base weights
	Adapter  model.AdapterConfig
	InitFrom string  // start from these adapter weights (made for an earlier base) instead of the no-op
	TRef     float64 // reference pass time (featurecache's)
	Views    int     // views of each reference (featurecache.Config.Views)
	// ViewEmbedding gives the adapters a learned embedding per view (model.AdapterConfig.Views) when
	// Views > 1.
	ViewEmbedding bool
	// SmallWeight weighs the loss of rows whose target is a small scene against the large ones' 1: a small
	// item is a quarter of the canvas, so unweighted its identity is a small part of the loss.
	SmallWeight  float64
	NoRef        float64 // reference → null reference
	Erase        float64 // random-erasing probability of a reference
	MaxParamFrac float64 // refuse adapters larger than this fraction of the base
}

// DefaultAdapterConfig adapts blocks 0–3 and 5 with a 128-wide, 4-head reference cross-attention in the
// additive form: 8.7 % of the default base. The additive form pays for five blocks where DreamCache's
// concat projection paid for three (1, 3, 5: 7.8 %); all six would be 10.5 %, over the cap. The shipped
// adapters measured the difference (weights/adapters.md).
func DefaultAdapterConfig() model.AdapterConfig {
	return model.AdapterConfig{Blocks: []int{0, 1, 2, 3, 5}, Inner: 128, Heads: 4, Additive: true}
}

// DefaultAdapters are the defaults of `cachet train adapters`.
func DefaultAdapters() AdaptersConfig {
	return AdaptersConfig{Base: "weights/base.safetensors", Adapter: DefaultAdapterConfig(), TRef: 10, Views: 6,
		ViewEmbedding: true, SmallWeight: 2, NoRef: 0.07, Erase: 0.4, MaxParamFrac: 0.10,
		Common: Common{DataDir: dataset.DefaultDir, Out: adapters.DefaultPath, Checkpoint: "var/train/adapters.ckpt.safetensors",
			Steps: 2000, Batch: 32, LR: 1e-3, MinLRFrac: 0.1, Warmup: 100, EMADecay: 0.995, CondDropout: 0.1,
			GradClip: 1, Seed: 1, CheckpointEvery: 5 * time.Minute, LogCSV: "var/train/adapters.csv", ValSamples: 64}}
}

func (c AdaptersConfig) validate() error {
	if err := c.Common.validate(); err != nil {
		return err
	}
	switch {
	case c.Base == "":
		return cachet.InvalidField("base", "the base model is empty")
	case c.NoRef < 0 || c.NoRef >= 1 || c.Erase < 0 || c.Erase > 1:
		return cachet.InvalidField("no_ref", "must be in [0, 1), and erase in [0, 1] (got %v, %v)", c.NoRef, c.Erase)
	case c.TRef < 0 || c.TRef > 1000:
		return cachet.InvalidField("t_ref", "must be in [0, 1000] (got %v)", c.TRef)
	case !(c.SmallWeight > 0 && c.SmallWeight <= 100):
		return cachet.InvalidField("small_weight", "must be in (0, 100] (got %v)", c.SmallWeight)
	case c.Views < 1 || c.Views > featurecache.MaxViews:
		return cachet.InvalidField("views", "must be 1 (the reference as given) to %d (also its small views: centred, then left, right, top, bottom) (got %d)", featurecache.MaxViews, c.Views)
	}
	return nil
}

// adapterConfig is the adapters' architecture: Adapter, with an embedding per reference view when
// ViewEmbedding asks for one and there is more than one view.
func (c AdaptersConfig) adapterConfig() model.AdapterConfig {
	ac := c.Adapter
	ac.Views = 0
	if c.ViewEmbedding && c.Views > 1 {
		ac.Views = c.Views
	}
	return ac
}

// RefBatches draws reproducible adapter-training batches: batch k depends only on (seed, k). A row is a
// training-split item under colour jitter: its reference is the item's canonical render with (with
// probability Erase) random erasing (the extractor adds its small views, as it does for an upload); its
// target is the same item under a random scene and that scene's prompt.
type RefBatches struct {
	set                   *dataset.Set
	seed                  uint64
	dropP, noRefP, eraseP float64
	smallWeight           float64
}

// NewRefBatches samples from set.
func NewRefBatches(set *dataset.Set, seed uint64, condDropout, noRef, erase float64) *RefBatches {
	return &RefBatches{set: set, seed: seed, dropP: condDropout, noRefP: noRef, eraseP: erase, smallWeight: 1}
}

// WeighSmall makes batches weigh the loss of small-scene rows by w (large ones by 1); 1 leaves the rows
// unweighted (TrainBatch.Weights nil).
func (b *RefBatches) WeighSmall(w float64) *RefBatches {
	b.smallWeight = w
	return b
}

// RefBatch is a batch before the reference pass: the reference images (model units) and which rows go
// without one.
type RefBatch struct {
	model.TrainBatch
	RefImages [][]float32
	NoRef     []bool
}

// Batch k of size n.
func (b *RefBatches) Batch(k uint64, n int) (RefBatch, error) {
	rng := rand.New(rand.NewPCG(b.seed, k))
	per := scene.CanvasPixels
	out := RefBatch{TrainBatch: model.TrainBatch{Images: make([]float32, n*per), Noise: make([]float32, n*per),
		Prompts: make([]string, n), Null: make([]bool, n), T: make([]float64, n)},
		RefImages: make([][]float32, n), NoRef: make([]bool, n)}
	for i := range n {
		idx := rng.IntN(b.set.Len())
		item := *b.set.Image(idx)
		Jitter(rng, &item)
		sc := scene.RandomScene(rng, b.set.Label(idx))
		img, err := scene.Render(&item, sc)
		if err != nil {
			return out, err
		}
		scene.PutModelUnits(out.Images[i*per:], img[:])
		ref, err := scene.Render(&item, scene.Canonical(b.set.Label(idx)))
		if err != nil {
			return out, err
		}
		erase := rng.Float64() < b.eraseP
		Erase(rng, &ref, erase)
		out.RefImages[i] = scene.ModelUnits(ref[:])
		out.Prompts[i] = scene.Format(sc)
		out.Null[i] = rng.Float64() < b.dropP
		out.NoRef[i] = rng.Float64() < b.noRefP
		out.T[i] = 1 / (1 + math.Exp(-rng.NormFloat64()))
		weighScene(&out.TrainBatch, i, n, sc, b.smallWeight)
		for p := range per {
			out.Noise[i*per+p] = float32(rng.NormFloat64())
		}
	}
	return out, nil
}

// Jitter is grayscale colour jitter of a subject: brightness and contrast each scaled by a factor in
// [0.7, 1.3] (torchvision's ColorJitter(0.3, 0.3) on one channel), contrast about the foreground's mean so
// the background stays 0. It is applied to the item before both renders: the reference and the target
// share it, so the adapters learn to carry the reference's shading over rather than to ignore it (a
// jitter of the reference alone taught them that shading is noise).
func Jitter(rng *rand.Rand, item *[scene.ItemPixels]uint8) {
	bright := 0.7 + 0.6*rng.Float64()
	contrast := 0.7 + 0.6*rng.Float64()
	var sum, n float64
	for _, v := range item {
		if v > 0 {
			sum += float64(v)
			n++
		}
	}
	if n == 0 {
		return
	}
	mean := sum * bright / n
	for i, v := range item {
		if v == 0 {
			continue
		}
		x := mean + contrast*(float64(v)*bright-mean)
		item[i] = uint8(math.Round(min(255, max(1, x))))
	}
}

// Erase is torchvision's RandomErasing (scale 0.02–0.33, ratio 0.3–3.3, value 0) applied when on. It
// draws the same number of random values either way, so batches stay reproducible.
func Erase(rng *rand.Rand, img *[scene.CanvasPixels]uint8, on bool) {
	const side = scene.CanvasSide
	area := (0.02 + 0.31*rng.Float64()) * side * side
	ratio := math.Exp(math.Log(0.3) + (math.Log(3.3)-math.Log(0.3))*rng.Float64())
	h := min(side, max(1, int(math.Round(math.Sqrt(area*ratio)))))
	w := min(side, max(1, int(math.Round(math.Sqrt(area/ratio)))))
	y0, x0 := rng.IntN(side-h+1), rng.IntN(side-w+1)
	if !on {
		return
	}
	for y := y0; y < y0+h; y++ {
		for x := x0; x < x0+w; x++ {
			img[y*side+x] = 0
		}
	}
}

// Adapters trains DreamCache adapters on a frozen base model. The reference pass is featurecache's own
// extraction (the same features a subject's cache holds), run on the training worker.
func Adapters(ctx context.Context, cfg AdaptersConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	baseID, err := featurecache.WeightsID(cfg.Base)
	if err != nil {
		return cachet.FieldError(cachet.CodeNotFound, "base", "%s: %v; train it with 'cachet train base'", cfg.Base, err)
	}
	set, val, err := cfg.prepare()
	if err != nil {
		return err
	}
	m := &adapterModels{w: model.NewWorker(true)}
	defer m.close()
	if err := m.open(ctx, cfg); err != nil {
		return err
	}
	np, nb := m.ad.NumParams(), m.base.NumParams()
	frac := float64(np) / float64(nb)
	fmt.Fprintf(cfg.Progress, "adapters: blocks %v, inner %d, %d heads, %d reference view(s): %d parameters = %.1f %% of the base's %d\n",
		cfg.Adapter.Blocks, cfg.Adapter.Inner, cfg.Adapter.Heads, cfg.Views, np, 100*frac, nb)
	if cfg.MaxParamFrac > 0 && frac > cfg.MaxParamFrac {
		return cachet.InvalidField("blocks", "the adapters would have %.1f %% of the base's parameters, over the %.0f %% cap; adapt fewer blocks or use a smaller inner width", 100*frac, 100*cfg.MaxParamFrac)
	}
	ex, err := featurecache.NewExtractor(m.w, m.base, baseID, featurecache.Config{Blocks: cfg.Adapter.Blocks, TRef: cfg.TRef, MaxBatch: 64, Views: cfg.Views})
	if err != nil {
		return err
	}
	valRef, valNoRef, err := adapterValidation(ctx, cfg, ex, m.base.Cfg, val)
	if err != nil {
		return err
	}
	// Validation stays unweighted, comparable across runs whatever their small-row weight.
	batches := NewRefBatches(set, cfg.Seed, cfg.CondDropout, cfg.NoRef, cfg.Erase).WeighSmall(cfg.SmallWeight)
	j := m.job(ctx, cfg, baseID, ex, batches, valRef, valNoRef)
	final, err := j.run(ctx)
	if err != nil || final == nil {
		return err
	}
	final[adapters.MetaBase] = baseID
	final[adapters.MetaTRef] = strconv.FormatFloat(cfg.TRef, 'g', -1, 64)
	final[adapters.MetaViews] = strconv.Itoa(cfg.Views)
	final["adapters.params"] = strconv.FormatInt(np, 10)
	final["adapters.base_params"] = strconv.FormatInt(nb, 10)
	final["train.data"] = "Fashion-MNIST train split (Debian dataset-fashion-mnist): canonical renders as references, random scenes as targets"
	if err := m.w.Do(context.WithoutCancel(ctx), func() error { return m.tr.EMA.Save(cfg.Out, final) }); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Progress, "\nwrote %s (EMA adapters, %d steps, base %s)\n", cfg.Out, cfg.Steps, baseID)
	return nil
}

// adapterModels are the frozen base, the adapters being trained and their trainer, on one worker thread.
type adapterModels struct {
	w    *model.Worker
	base *model.DiT
	ad   *model.Adapters
	tr   *model.AdapterTrainer
}

// open loads the base, makes the adapters (from cfg.InitFrom when set) and their trainer.
func (m *adapterModels) open(ctx context.Context, cfg AdaptersConfig) error {
	return m.w.Do(ctx, func() error {
		if err := model.SetSeed(int64(cfg.Seed)); err != nil {
			return err
		}
		dev, err := cfg.device()
		if err != nil {
			return err
		}
		if m.base, _, err = model.Load(cfg.Base, dev); err != nil {
			return err
		}
		if m.ad, err = model.NewAdapters(m.base.Cfg, cfg.adapterConfig(), dev); err != nil {
			return err
		}
		if cfg.InitFrom != "" {
			// Trained adapters (for an earlier base, or with fewer blocks) are a far better start than the
			// no-op: a fine-tuned base moves little, and new blocks start as a no-op beside the carried ones.
			from, meta, err := model.LoadAdapters(cfg.InitFrom, m.base.Cfg, dev)
			if err != nil {
				return err
			}
			defer from.Close()
			carried, err := m.ad.Transplant(from)
			if err != nil {
				return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "init_from", Message: "init_from " + cfg.InitFrom, Err: err}
			}
			fmt.Fprintf(cfg.Progress, "adapters: starting blocks %v from %s (blocks %v, trained for base %s)\n",
				carried, cfg.InitFrom, from.Cfg.Blocks, meta[adapters.MetaBase])
		}
		m.tr, err = model.NewAdapterTrainer(m.base, m.ad, cfg.trainer())
		return err
	})
}

func (m *adapterModels) close() {
	_ = m.w.Do(context.Background(), func() error {
		if m.tr != nil {
			m.tr.Close()
		}
		if m.ad != nil {
			m.ad.Close()
		}
		if m.base != nil {
			m.base.Close()
		}
		return nil
	})
	m.w.Close()
}

// adapterValidation is the fixed validation batch with its references, and the same batch with the null
// reference: the gap between their losses is what the references are worth.
func adapterValidation(ctx context.Context, cfg AdaptersConfig, ex *featurecache.Extractor, base model.Config, val *dataset.Set) (withRef, noRef model.AdapterBatch, err error) {
	vb, err := NewRefBatches(val, cfg.Seed+1000, 0, 0, 0).Batch(0, max(1, cfg.ValSamples))
	if err != nil {
		return withRef, noRef, err
	}
	if withRef, err = withReferences(ctx, ex, base, cfg.Adapter, vb); err != nil {
		return withRef, noRef, err
	}
	noRef = withRef
	noRef.NoRef = make([]bool, len(vb.NoRef))
	for i := range noRef.NoRef {
		noRef.NoRef[i] = true
	}
	return withRef, noRef, nil
}

// job is the training loop's steps, checkpoints and resume for the adapters.
func (m *adapterModels) job(ctx context.Context, cfg AdaptersConfig, baseID string, ex *featurecache.Extractor, batches *RefBatches,
	valRef, valNoRef model.AdapterBatch) job {
	return job{Name: "adapter", Common: cfg.Common,
		load: func() (meta map[string]string, err error) {
			err = m.w.Do(ctx, func() error {
				meta, err = m.tr.LoadCheckpoint(cfg.Checkpoint)
				return err
			})
			if err == nil && meta[adapters.MetaBase] != baseID {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s trains adapters for base %s, not %s (%s); remove it or pass that base", cfg.Checkpoint, meta[adapters.MetaBase], baseID, cfg.Base)
			}
			return meta, err
		},
		step: func(k int, lr float64) (float64, error) {
			// A started step finishes even when interrupted: the loop checks ctx between steps and then
			// checkpoints (a step canceled halfway would lose everything since the last checkpoint).
			stepCtx := context.WithoutCancel(ctx)
			rb, err := batches.Batch(uint64(k), cfg.Batch)
			if err != nil {
				return 0, err
			}
			b, err := withReferences(stepCtx, ex, m.base.Cfg, cfg.Adapter, rb)
			if err != nil {
				return 0, err
			}
			var loss float64
			err = m.w.Do(stepCtx, func() error {
				m.tr.SetLR(lr)
				loss, err = m.tr.Step(b, cfg.GradClip)
				return err
			})
			return loss, err
		},
		save: func(k int, meta map[string]string) (vl float64, err error) {
			meta[adapters.MetaBase] = baseID
			var nullRef float64
			err = m.w.Do(context.WithoutCancel(ctx), func() error {
				if vl, err = model.AdapterFlowLoss(m.base, m.tr.EMA, valRef); err != nil {
					return err
				}
				if nullRef, err = model.AdapterFlowLoss(m.base, m.tr.EMA, valNoRef); err != nil {
					return err
				}
				return m.tr.SaveCheckpoint(cfg.Checkpoint, meta)
			})
			// The null-reference loss alone moving means the adapters changed the base's behaviour.
			fmt.Fprintf(cfg.Progress, "\ncheckpoint at step %d: validation loss %.4f with references, %.4f with the null reference\n", k, vl, nullRef)
			return vl, err
		},
	}
}

// withReferences runs the reference pass over a batch's reference images (skipping null-reference rows)
// and lays the features out as the adapter trainer wants them.
func withReferences(ctx context.Context, ex *featurecache.Extractor, base model.Config, ac model.AdapterConfig, rb RefBatch) (model.AdapterBatch, error) {
	var imgs [][]float32
	for i, img := range rb.RefImages {
		if !rb.NoRef[i] {
			imgs = append(imgs, img)
		}
	}
	out := model.AdapterBatch{TrainBatch: rb.TrainBatch, NoRef: rb.NoRef}
	fs, err := ex.Extract(ctx, imgs)
	if err != nil {
		return out, err
	}
	n := len(rb.RefImages)
	tokens, width := base.Tokens()*ex.Config().NumViews(), base.Width
	out.RefTokens = tokens
	out.Refs = make([][]float32, len(ac.Blocks))
	for bi, blk := range ac.Blocks {
		out.Refs[bi] = make([]float32, n*tokens*width)
		k := 0
		for i := range n {
			if rb.NoRef[i] {
				continue
			}
			copy(out.Refs[bi][i*tokens*width:], fs[k].Block(blk))
			k++
		}
	}
	return out, nil
}
