package personaleval

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// Config configures one evaluation run.
type Config struct {
	Weights   string // the base denoiser
	Adapters  string // adapter weights trained on it
	Evaluator string
	DataDir   string
	Out       string
	Subjects  int // unseen test-split items
	Prompts   int // random scenes per subject
	Seed      uint64
	Batch     int // images per sampler request (several subjects share one)
	Steps     int
	Guidance  float64
	// CleanRenorm is the clean-image renormalisation φ (model.SampleRequest.CleanRenorm; 0 = off).
	CleanRenorm float64
	// ReferenceGuidance says which guidance branches see the subject (model.ReferenceGuidance).
	ReferenceGuidance model.ReferenceGuidance
	// TorchThreads is recorded in the report (the caller sets libtorch's threads).
	TorchThreads int
	Progress     io.Writer
}

// DefaultConfig is `cachet eval personalization` without flags.
func DefaultConfig() Config {
	return Config{Weights: "weights/base.safetensors", Adapters: adapters.DefaultPath, Evaluator: "weights/evaluator.safetensors",
		DataDir: dataset.DefaultDir, Out: "var/eval/personalization", Subjects: 40, Prompts: 4, Seed: 1, Batch: 40,
		Steps: 50, Guidance: cachet.DefaultSubjectGuidance, CleanRenorm: cachet.DefaultCleanRenorm}
}

func (c Config) validate() error {
	switch {
	case c.Weights == "" || c.Adapters == "" || c.Evaluator == "":
		return cachet.InvalidField("weights", "the weights, the adapters and the evaluator must all be set")
	case c.Out == "":
		return cachet.InvalidField("out", "is empty; give the report directory")
	case c.Subjects <= 0 || c.Subjects > 10000 || c.Prompts <= 0 || c.Prompts > 100:
		return cachet.InvalidField("subjects", "must be 1…10000 and prompts 1…100 (got %d, %d)", c.Subjects, c.Prompts)
	case c.Batch <= 0:
		return cachet.InvalidField("batch", "must be positive (got %d)", c.Batch)
	case c.Steps <= 0 || c.Steps > model.MaxSteps:
		return cachet.InvalidField("steps", "must be between 1 and %d (got %d)", model.MaxSteps, c.Steps)
	case math.IsNaN(c.Guidance) || c.Guidance < 0 || c.Guidance > 50:
		return cachet.InvalidField("guidance", "must be between 0 and 50 (got %v)", c.Guidance)
	case math.IsNaN(c.CleanRenorm) || c.CleanRenorm < 0 || c.CleanRenorm > 1:
		return cachet.InvalidField("clean_renorm", "must be between 0 and 1 (got %v)", c.CleanRenorm)
	}
	return nil
}

// row is one generated image: subject s under its k-th scene.
type row struct{ s, k int }

// Run evaluates the adapters and writes the report into cfg.Out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	began := time.Now()
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, cachet.InvalidField("out", "%s: %v", cfg.Out, err)
	}
	baseID, err := featurecache.WeightsID(cfg.Weights)
	if err != nil {
		return nil, cachet.FieldError(cachet.CodeNotFound, "weights", "%s: %v", cfg.Weights, err)
	}
	det, subjects, err := loadSubjects(cfg)
	if err != nil {
		return nil, err
	}
	models, err := baseeval.OpenModels(ctx, cfg.Weights, cfg.Evaluator)
	if err != nil {
		return nil, err
	}
	defer models.Close()
	w, base := models.W, models.DiT
	var set *adapters.Set
	defer w.Do(context.Background(), func() error {
		if set != nil {
			set.Close()
		}
		return nil
	})
	if err := w.Do(ctx, func() error {
		var err error
		set, err = adapters.Load(cfg.Adapters, base, baseID)
		return err
	}); err != nil {
		return nil, err
	}
	ex, err := featurecache.NewExtractor(w, base, baseID, set.CacheConfig(base))
	if err != nil {
		return nil, err
	}
	ext, err := extractReferences(ctx, ex, subjects)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "eval personalization: %s + %s, %d subjects × %d prompts, %d steps, guidance %g; extraction median %.1f ms\n",
		cfg.Weights, cfg.Adapters, len(subjects), cfg.Prompts, cfg.Steps, cfg.Guidance, cachet.Millis(median(ext.latencies)))
	rows := promptRows(len(subjects), cfg.Prompts)
	smp, err := sampleBoth(ctx, cfg, models, set, subjects, ext.refs, rows)
	if err != nil {
		return nil, err
	}
	sc, err := scoreAll(ctx, models, det, subjects, rows, smp)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Config: RunConfig{Weights: cfg.Weights, BaseID: baseID, Model: base.Cfg.String(), Adapters: cfg.Adapters,
			AdapterConfig: set.Config(), TRef: set.TRef(), RefViews: set.Views(), Evaluator: cfg.Evaluator, Data: cfg.DataDir, Subjects: len(subjects),
			Prompts: cfg.Prompts, Seed: cfg.Seed, Steps: cfg.Steps, Guidance: cfg.Guidance, CleanRenorm: cfg.CleanRenorm, ReferenceGuidance: cfg.ReferenceGuidance.String(), Batch: cfg.Batch, N: len(rows),
			TorchThreads: cfg.TorchThreads},
		Adapted:       identity(sc.adapted, sc.refs),
		NoReference:   identity(sc.plain, sc.refs),
		Oracle:        identity(sc.oracle, sc.refs),
		ByScene:       IdentityByScene(sc.scenes, sc.refs, sc.adapted, sc.plain, sc.oracle),
		AlignAdapted:  baseeval.Tally(sc.adaptedJ),
		AlignBase:     baseeval.Tally(sc.plainJ),
		AlignOracle:   baseeval.Tally(sc.oracleJ),
		AdapterParams: set.Params(),
		BaseParams:    base.NumParams(),
		Extraction: Latency{MedianMs: cachet.Millis(median(ext.latencies)), P90Ms: cachet.Millis(quantile(ext.latencies, 0.9)),
			MaxMs: cachet.Millis(slices.Max(ext.latencies)), N: len(ext.latencies)},
		CacheBytesPerSubject:   float64(ext.cacheBytes) / float64(len(subjects)),
		DecodedBytesPerSubject: float64(ext.refs[0].Bytes()),
		AdaptedSeconds:         smp.adaptedT.Seconds(),
		PlainSeconds:           smp.plainT.Seconds(),
	}
	r.finish()
	r.Seconds = time.Since(began).Seconds()
	if err := r.Write(cfg.Out, Grid(subjects, rows, sc.adaptedJ, sc.plainJ, sc.oracleJ)); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "eval personalization: wrote %s, %s and %s into %s (%.0f s in all)\n", JSONFile, MarkdownFile, GridFile, cfg.Out, r.Seconds)
	return r, nil
}

// loadSubjects reads the training split for the mirror detector and draws the unseen test-split subjects.
func loadSubjects(cfg Config) (*baseeval.MirrorDetector, []Subject, error) {
	train, err := dataset.Load(cfg.DataDir, dataset.Train)
	if err != nil {
		return nil, nil, err
	}
	det := baseeval.NewMirrorDetector(train)
	test, err := dataset.Load(cfg.DataDir, dataset.Test)
	if err != nil {
		return nil, nil, err
	}
	subjects, err := Subjects(test, cfg.Subjects, cfg.Prompts, cfg.Seed)
	return det, subjects, err
}

// extraction is each subject's reference cache and what making it cost.
type extraction struct {
	refs       []*featurecache.Features
	latencies  []time.Duration
	cacheBytes int64
}

// extractReferences makes one reference cache per call, as an upload does, after one warm-up pass.
func extractReferences(ctx context.Context, ex *featurecache.Extractor, subjects []Subject) (*extraction, error) {
	out := &extraction{refs: make([]*featurecache.Features, len(subjects))}
	for i, s := range subjects {
		img := scene.ModelUnits(s.Reference[:])
		if i == 0 {
			if _, err := ex.Extract(ctx, [][]float32{img}); err != nil {
				return nil, err
			}
		}
		t0 := time.Now()
		fs, err := ex.Extract(ctx, [][]float32{img})
		if err != nil {
			return nil, err
		}
		out.latencies = append(out.latencies, time.Since(t0))
		out.refs[i] = fs[0]
		enc, err := featurecache.Encode(fs[0])
		if err != nil {
			return nil, err
		}
		out.cacheBytes += int64(len(enc))
	}
	return out, nil
}

// promptRows lists every subject under each of its prompts.
func promptRows(subjects, prompts int) []row {
	var rows []row
	for s := range subjects {
		for k := range prompts {
			rows = append(rows, row{s, k})
		}
	}
	return rows
}

// samples are the images of every row with the adapters and without, and the time each took.
type samples struct {
	adapted, plain   [][scene.CanvasPixels]uint8
	adaptedT, plainT time.Duration
}

// sampleBoth samples every row twice, with the subject's reference injected and without, from the same
// noise, in batches of cfg.Batch rows.
func sampleBoth(ctx context.Context, cfg Config, models *baseeval.Models, set *adapters.Set, subjects []Subject,
	refs []*featurecache.Features, rows []row) (*samples, error) {
	out := &samples{adapted: make([][scene.CanvasPixels]uint8, len(rows)), plain: make([][scene.CanvasPixels]uint8, len(rows))}
	for start := 0; start < len(rows); start += cfg.Batch {
		batch := rows[start:min(start+cfg.Batch, len(rows))]
		req := model.SampleRequest{Seed: int64(cfg.Seed), Steps: cfg.Steps, Guidance: cfg.Guidance, CleanRenorm: cfg.CleanRenorm,
			Noise: baseeval.Noise(int64(cfg.Seed), start, len(batch), scene.CanvasPixels)}
		batchRefs := make([]*featurecache.Features, len(batch))
		for i, r := range batch {
			req.Prompts = append(req.Prompts, scene.Format(subjects[r.s].Scenes[r.k]))
			batchRefs[i] = refs[r.s]
		}
		// Alternate which runs first so that neither always meets a warmer cache.
		order := []bool{true, false}
		if (start/cfg.Batch)%2 == 1 {
			order = []bool{false, true}
		}
		for _, adapted := range order {
			t0 := time.Now()
			imgs, err := sampleRows(ctx, models, set, req, batchRefs, adapted, cfg.ReferenceGuidance)
			if err != nil {
				return nil, err
			}
			if adapted {
				out.adaptedT += time.Since(t0)
				copy(out.adapted[start:], imgs)
			} else {
				out.plainT += time.Since(t0)
				copy(out.plain[start:], imgs)
			}
		}
		fmt.Fprintf(cfg.Progress, "eval personalization: %d/%d prompts (adapted %.1f s, plain %.1f s so far)\n",
			start+len(batch), len(rows), out.adaptedT.Seconds(), out.plainT.Seconds())
	}
	return out, nil
}

// sampleRows samples one batch, through the adapters when adapted.
func sampleRows(ctx context.Context, models *baseeval.Models, set *adapters.Set, req model.SampleRequest,
	refs []*featurecache.Features, adapted bool, rg model.ReferenceGuidance) ([][scene.CanvasPixels]uint8, error) {
	var res *model.SampleResult
	err := models.W.Do(ctx, func() error {
		if adapted {
			inj, release, err := set.RowHooks(refs, rg)
			if err != nil {
				return err
			}
			defer release()
			req.Inject = inj
		}
		var err error
		res, err = models.DiT.Sample(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return scene.CanvasesFromModelUnits(res.Pixels)
}

// scores are the judged images of the three kinds (adapted, no reference, oracle renders) with their
// evaluator features, next to the references'.
type scores struct {
	scenes                    []scene.Scene
	adaptedJ, plainJ, oracleJ []baseeval.Judgement
	refs, adapted, plain      Scored
	oracle                    Scored
}

// scoreAll renders the oracle images, judges all three kinds and computes their evaluator features.
func scoreAll(ctx context.Context, models *baseeval.Models, det *baseeval.MirrorDetector, subjects []Subject, rows []row,
	smp *samples) (*scores, error) {
	sc := &scores{scenes: make([]scene.Scene, len(rows))}
	oracleImgs := make([][scene.CanvasPixels]uint8, len(rows))
	refItems := make([]*[scene.ItemPixels]uint8, len(rows))
	for i, r := range rows {
		s := &subjects[r.s]
		sc.scenes[i] = s.Scenes[r.k]
		refItems[i] = &s.Item
		var err error
		if oracleImgs[i], err = scene.Render(&s.Item, sc.scenes[i]); err != nil {
			return nil, err
		}
	}
	var err error
	if sc.adaptedJ, err = baseeval.JudgeAll(smp.adapted, sc.scenes, det); err != nil {
		return nil, err
	}
	if sc.plainJ, err = baseeval.JudgeAll(smp.plain, sc.scenes, det); err != nil {
		return nil, err
	}
	if sc.oracleJ, err = baseeval.JudgeAll(oracleImgs, sc.scenes, det); err != nil {
		return nil, err
	}
	var adaptedF, plainF, oracleF, refF [][]float64
	ev := models.Evaluator
	if err := models.W.Do(ctx, func() error {
		var err error
		if adaptedF, err = baseeval.Classify(ev, sc.adaptedJ); err != nil {
			return err
		}
		if plainF, err = baseeval.Classify(ev, sc.plainJ); err != nil {
			return err
		}
		if oracleF, err = baseeval.Classify(ev, sc.oracleJ); err != nil {
			return err
		}
		items := make([]uint8, 0, len(subjects)*scene.ItemPixels)
		for _, s := range subjects {
			items = append(items, s.Item[:]...)
		}
		refF, err = ev.Features(items, 128)
		return err
	}); err != nil {
		return nil, err
	}
	rowRefF := make([][]float64, len(rows))
	for i, r := range rows {
		rowRefF[i] = refF[r.s]
	}
	sc.refs = Scored{Items: refItems, Features: rowRefF}
	sc.adapted = Scored{Items: judgedItems(sc.adaptedJ), Features: adaptedF}
	sc.plain = Scored{Items: judgedItems(sc.plainJ), Features: plainF}
	sc.oracle = Scored{Items: judgedItems(sc.oracleJ), Features: oracleF}
	return sc, nil
}

func judgedItems(js []baseeval.Judgement) []*[scene.ItemPixels]uint8 {
	out := make([]*[scene.ItemPixels]uint8, len(js))
	for i := range js {
		out[i] = &js[i].Item
	}
	return out
}

func median(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
