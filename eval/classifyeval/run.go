// Package classifyeval is `cachet eval classify`: Fashion-MNIST test accuracy of zero-shot, TFUP, 16-shot
// Tip-Adapter and the diffusion classifier on the model's features, against kNN on pixels and the
// evaluator CNN; pseudo-label accuracy of the TFUP cache; latency and throughput of the classify path.
package classifyeval

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/storage"
)

// Config is one evaluation run.
type Config struct {
	Weights, Evaluator, DataDir, Out, DatabaseURL string
	FeatureWeights                                string // the feature pass's weights setting (classify.ResolveFeatureWeights)
	Service                                       classify.Config
	Test                                          int       // test images (0 = all 10,000)
	Shots                                         int       // labelled training images per class for Tip-Adapter
	ShotDraws                                     int       // draws of the shots the default (propagated) build is averaged over
	Diffusion                                     int       // test images for the diffusion classifier (0 = skip)
	DiffusionTimes                                []float64 // model times it averages its denoising errors over
	KNNTrain                                      int       // training images for kNN on pixels (0 = skip)
	BlockStudy                                    int       // held-out training images for the block study (0 = skip)
	LatencyBatches                                int       // batches timed through the full classify path
	Batch                                         int       // images per classify request when timing
	Validation                                    int       // last training images that tune α and β (0 = no tuned rows)
	Robustness                                    int       // test images of the robustness section (0 = skip)
	OutOfDomain                                   int       // test images per class of the glyph task (0 = skip)
	FontsDir                                      string    // the glyph task's .ttf faces
	Seed                                          int64
	TorchThreads                                  int
	Progress                                      io.Writer
}

// maxDiffusionTimes bounds the diffusion classifier's forward rows per image (times × ten prompts).
const maxDiffusionTimes = 50

// DefaultConfig is the full run (README, "Classification").
func DefaultConfig() Config {
	return Config{Weights: "weights/base.safetensors", Evaluator: "weights/evaluator.safetensors", DataDir: dataset.DefaultDir,
		Out: "eval/reports/classify", Service: classify.DefaultConfig(), Shots: 16, ShotDraws: 5, Diffusion: 200,
		DiffusionTimes: slices.Clone(classify.DiffusionTimes), KNNTrain: 60000,
		BlockStudy: 2000, Validation: 1000, Robustness: 2000, OutOfDomain: 100, FontsDir: DefaultFontsDir, LatencyBatches: 20, Batch: 32, Seed: 1, Progress: io.Discard}
}

func (c Config) validate() error {
	switch {
	case c.Weights == "" || c.Evaluator == "" || c.Out == "":
		return cachet.InvalidField("weights", "the weights, the evaluator and out must all be set")
	case c.Test < 0 || c.Test > 10000:
		return cachet.InvalidField("test", "must be 0 (all) … 10000 (got %d)", c.Test)
	case c.Shots < 1 || c.Shots > 1000:
		return cachet.InvalidField("shots", "must be 1…1000 (got %d)", c.Shots)
	case c.ShotDraws < 1 || c.ShotDraws > 20:
		return cachet.InvalidField("shot_draws", "must be 1…20 (got %d)", c.ShotDraws)
	case c.Validation < 0 || c.Validation > 10000:
		return cachet.InvalidField("validation", "must be 0…10000 (got %d)", c.Validation)
	case c.Diffusion < 0 || c.KNNTrain < 0 || c.KNNTrain > 60000 || c.BlockStudy < 0 || c.BlockStudy > 20000:
		return cachet.InvalidField("diffusion", "must be ≥ 0, knn_train 0…60000 and block_study 0…20000")
	case len(c.DiffusionTimes) < 1 || len(c.DiffusionTimes) > maxDiffusionTimes:
		return cachet.InvalidField("diffusion_times", "must list 1…%d model times (got %d)", maxDiffusionTimes, len(c.DiffusionTimes))
	case slices.ContainsFunc(c.DiffusionTimes, func(t float64) bool { return !(t > 0 && t <= 1000) }):
		return cachet.InvalidField("diffusion_times", "must lie in (0, 1000] (got %v)", c.DiffusionTimes)
	case c.LatencyBatches < 1 || c.Batch < 1 || c.Batch > c.Service.MaxImages:
		return cachet.InvalidField("latency_batches", "must be ≥ 1, and batch 1…%d", c.Service.MaxImages)
	case c.OutOfDomain < 0 || c.OutOfDomain > 1000:
		return cachet.InvalidField("out_of_domain", "must be 0 (skip) … 1000 test images per class (got %d)", c.OutOfDomain)
	case c.Robustness < 0 || c.Robustness > 10000:
		return cachet.InvalidField("robustness", "must be 0 (skip) … 10000 (got %d)", c.Robustness)
	case c.Test != 0 && c.Test < c.Batch:
		return cachet.InvalidField("test", "(%d) must hold at least one batch (%d)", c.Test, c.Batch)
	}
	return nil
}

// Method is one classifier's accuracy on the test images it saw.
type Method struct {
	Name     string  `json:"name"`
	Images   int     `json:"images"`
	Accuracy float64 `json:"accuracy"`
	Note     string  `json:"note,omitempty"`
}

// PseudoLabels is the TFUP cache's quality: how many selected entries carry their true label.
type PseudoLabels struct {
	Entries  int     `json:"entries"`
	PerClass int     `json:"per_class"`
	Values   string  `json:"values"` // the default TFUP model's value kind
	Accuracy float64 `json:"accuracy"`
}

// Latency is the classify path timed at a batch size: per-image milliseconds of each part, throughput.
type Latency struct {
	Batch            int     `json:"batch"`
	Batches          int     `json:"batches"`
	FeaturesMS       float64 `json:"features_ms_per_image"`
	QueryMS          float64 `json:"pgvector_query_ms_per_image"`
	ScoringMS        float64 `json:"scoring_ms_per_image"`
	ImagesPerSecond  float64 `json:"images_per_second"`
	ExtractPerSecond float64 `json:"extraction_images_per_second"` // the bulk pass over the test images
}

// Report is what the run writes (report.json, report.md).
type Report struct {
	Weights      string              `json:"weights"`
	ModelID      string              `json:"model_id"`
	Features     string              `json:"feature_weights,omitempty"` // the feature pass's own weights, when not Weights
	Blocks       []int               `json:"blocks"`
	Grid         int                 `json:"grid"`
	Center       bool                `json:"centered_head"`
	Head         classify.HeadConfig `json:"head"`
	TorchThreads int                 `json:"torch_threads"`
	Methods      []Method            `json:"methods"`
	Pseudo       PseudoLabels        `json:"tfup_pseudo_labels"`
	Latency      Latency             `json:"latency"`
	BlockStudy   []BlockRow          `json:"block_study,omitempty"`
	Robustness   []RobustnessRow     `json:"robustness,omitempty"`
	OutOfDomain  []Method            `json:"out_of_domain,omitempty"`
	Seconds      float64             `json:"seconds"`
	cfg          Config
	val          *validation
	diffErrs     [][]float64 // the diffusion classifier's errors on the first test images, [image][class]
}

// Run evaluates cfg.Weights and writes the report into cfg.Out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, cachet.InvalidField("out", "%s: cannot create the report directory: %v", cfg.Out, err)
	}
	modelID, err := featurecache.WeightsID(cfg.Weights)
	if err != nil {
		return nil, cachet.InvalidField("weights", "%s cannot be read: %v", cfg.Weights, err)
	}
	test, err := dataset.Load(cfg.DataDir, dataset.Test)
	if err != nil {
		return nil, err
	}
	train, err := dataset.Load(cfg.DataDir, dataset.Train)
	if err != nil {
		return nil, err
	}
	db, err := storage.MigrateAndOpen(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	w := model.NewWorker(false)
	defer w.Close()
	dit, release, err := model.LoadOn(ctx, w, cfg.Weights)
	if err != nil {
		return nil, err
	}
	defer release()
	featureWeights, err := classify.ResolveFeatureWeights(cfg.Weights, modelID, cfg.FeatureWeights)
	if err != nil {
		return nil, err
	}
	features, featuresID := dit, modelID
	if featureWeights != "" {
		var releaseFeatures func()
		if features, featuresID, releaseFeatures, err = classify.LoadFeatureModel(ctx, w, featureWeights); err != nil {
			return nil, err
		}
		defer releaseFeatures()
	}
	newService := func(c classify.Config) (*classify.Service, error) {
		return classify.NewWithFeatures(db, w, dit, modelID, features, featuresID, c)
	}
	svc, err := newService(cfg.Service)
	if err != nil {
		return nil, err
	}
	r := &Report{Weights: cfg.Weights, ModelID: modelID, Features: featureWeights, Blocks: cfg.Service.Blocks, Grid: cfg.Service.Grid, Center: cfg.Service.Center, Head: cfg.Service.Head,
		TorchThreads: cfg.TorchThreads, cfg: cfg}

	if cfg.BlockStudy > 0 {
		if r.BlockStudy, err = blockStudy(ctx, w, dit, modelID, train, cfg.BlockStudy, cfg.Service.Head, progress); err != nil {
			return nil, err
		}
	}
	n := cfg.Test
	if n == 0 {
		n = test.Len()
	}
	if n > test.Len() || cfg.Robustness > test.Len() {
		return nil, cachet.InvalidField("test", "%s has %d test images (test %d, robustness %d)", cfg.DataDir, test.Len(), n, cfg.Robustness)
	}
	canvases, labels, err := canvasesOf(test, seq(n))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "eval classify: extracting %d test images (blocks %v)\n", n, cfg.Service.Blocks)
	t0 := time.Now()
	feats, err := svc.Featurizer().Canvases(ctx, canvases)
	if err != nil {
		return nil, err
	}
	r.Latency.ExtractPerSecond = float64(n) / time.Since(t0).Seconds()

	if err := r.zeroShot(ctx, svc, newService, feats, labels, progress); err != nil {
		return nil, err
	}
	if err := r.validationSet(ctx, svc, train, progress); err != nil {
		return nil, err
	}
	tfupID, err := r.tfup(ctx, svc, canvases, labels, feats, progress)
	if err != nil {
		return nil, err
	}
	defer func() { _ = svc.DeleteCollection(context.WithoutCancel(ctx), tfupID) }()
	// The diffusion classifier runs before the few-shot builds, which add its logits to theirs.
	if cfg.Diffusion > 0 {
		if err := r.diffusion(ctx, w, dit, canvases[:min(cfg.Diffusion, n)], labels, progress); err != nil {
			return nil, err
		}
	}
	if err := r.tip(ctx, svc, train, canvases, labels, feats, progress); err != nil {
		return nil, err
	}
	if cfg.KNNTrain > 0 {
		fmt.Fprintf(progress, "eval classify: kNN on pixels (%d training images)\n", cfg.KNNTrain)
		acc := knnPixels(train, cfg.KNNTrain, test, n, 5)
		r.add("reference: 5-NN on pixels", acc, n, fmt.Sprintf("%d training images, L2", cfg.KNNTrain))
	}
	if cfg.Robustness > 0 || cfg.OutOfDomain > 0 {
		pair, err := r.recenterPair(newService)
		if err != nil {
			return nil, err
		}
		if cfg.Robustness > 0 {
			if err := r.robustness(ctx, pair, test, train, progress); err != nil {
				return nil, err
			}
		}
		if cfg.OutOfDomain > 0 {
			if err := r.outOfDomain(ctx, pair, progress); err != nil {
				return nil, err
			}
		}
	}
	if err := r.evaluatorCNN(ctx, w, test, n); err != nil {
		return nil, err
	}
	if err := r.latency(ctx, svc, tfupID, canvases); err != nil {
		return nil, err
	}
	r.Seconds = time.Since(start).Seconds()
	if err := eval.WriteReport(cfg.Out, r, r.Tables(), "", nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "eval classify: wrote report.json and report.md into %s (%.0f s)\n", cfg.Out, r.Seconds)
	return r, nil
}

func (r *Report) add(name string, acc float64, images int, note string) {
	r.Methods = append(r.Methods, Method{Name: name, Images: images, Accuracy: acc, Note: note})
}

// seq is n consecutive indices from the optional start.
func seq(n int, start ...int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
		if len(start) > 0 {
			out[i] += start[0]
		}
	}
	return out
}

func canvasesOf(s *dataset.Set, idx []int) ([][]uint8, []int, error) {
	canvases := make([][]uint8, len(idx))
	labels := make([]int, len(idx))
	for j, i := range idx {
		c, err := classify.ItemCanvas(s.Image(i))
		if err != nil {
			return nil, nil, err
		}
		canvases[j], labels[j] = c, s.Label(i)
	}
	return canvases, labels, nil
}

func accuracy(scores []classify.Scores, labels []int) float64 {
	correct := 0
	for i, s := range scores {
		if classify.Argmax(s.Logits) == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(scores))
}

func (r *Report) diffusion(ctx context.Context, w *model.Worker, dit *model.DiT, canvases [][]uint8, labels []int, progress io.Writer) error {
	prompts, err := classify.LabelPrompts(dit.Cfg, scene.ClassNames[:])
	if err != nil {
		return fmt.Errorf("eval classify: %w", err)
	}
	imgs := make([][]float32, len(canvases))
	for i, c := range canvases {
		imgs[i] = scene.ModelUnits(c)
	}
	fmt.Fprintf(progress, "eval classify: diffusion classifier on %d test images (%d times × %d classes each)\n", len(imgs), len(r.cfg.DiffusionTimes), len(prompts))
	t0 := time.Now()
	errs, err := classify.DiffusionErrors(ctx, w, dit, imgs, prompts, r.cfg.DiffusionTimes, r.cfg.Seed)
	if err != nil {
		return err
	}
	per := time.Since(t0).Seconds() * 1000 / float64(len(imgs))
	r.diffErrs = errs
	correct := 0
	for i, e := range errs {
		if classify.Argmax(classify.DiffusionLogits(e)) == labels[i] {
			correct++
		}
	}
	r.add("diffusion classifier (zero-shot)", float64(correct)/float64(len(imgs)), len(imgs),
		fmt.Sprintf("first %d test images; times %v; %.0f ms per image", len(imgs), r.cfg.DiffusionTimes, per))
	return nil
}

func (r *Report) evaluatorCNN(ctx context.Context, w *model.Worker, test *dataset.Set, n int) error {
	var pred []int
	err := w.Do(ctx, func() error {
		c, _, err := model.LoadClassifier(r.cfg.Evaluator, model.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		pred, _, err = c.Predict(test.Pixels[:n*scene.ItemPixels], 256)
		return err
	})
	if err != nil {
		return err
	}
	correct := 0
	for i, p := range pred {
		if p == test.Label(i) {
			correct++
		}
	}
	r.add("reference: evaluator CNN (trained on all 60k labels)", float64(correct)/float64(n), n, "weights/evaluator.safetensors")
	return nil
}

// latency times the full classify path (features, pgvector query, scoring) at the configured batch.
func (r *Report) latency(ctx context.Context, svc *classify.Service, id string, canvases [][]uint8) error {
	b := r.cfg.Batch
	var f, q, s float64
	images := 0
	t0 := time.Now()
	for k := 0; k < r.cfg.LatencyBatches; k++ {
		from := (k * b) % max(1, len(canvases)-b)
		res, err := svc.ClassifyCanvases(ctx, classify.Query{Collection: id, TopK: 1}, canvases[from:from+b])
		if err != nil {
			return err
		}
		f, q, s = f+res.Timings.FeaturesMS, q+res.Timings.QueryMS, s+res.Timings.ScoringMS
		images += b
	}
	wall := time.Since(t0).Seconds()
	r.Latency.Batch, r.Latency.Batches = b, r.cfg.LatencyBatches
	r.Latency.FeaturesMS, r.Latency.QueryMS, r.Latency.ScoringMS = f/float64(images), q/float64(images), s/float64(images)
	r.Latency.ImagesPerSecond = float64(images) / wall
	return nil
}

// zeroShot scores the zero-shot head (and, when it is whitened, the same prototypes unwhitened, from a
// second service that newService makes).
func (r *Report) zeroShot(ctx context.Context, svc *classify.Service, newService func(classify.Config) (*classify.Service, error),
	feats [][]float32, labels []int, progress io.Writer) error {
	cfg := r.cfg.Service
	n := len(labels)
	fmt.Fprintf(progress, "eval classify: zero-shot head (%d samples per class, %d steps; kept in Postgres)\n", cfg.Head.Samples, cfg.Head.Steps)
	_, zs, err := svc.ClassifyFeatures(ctx, "", feats, 1)
	if err != nil {
		return err
	}
	r.add("zero-shot (prototypes of the model's samples)", accuracy(zs, labels), n, fmt.Sprintf("whitened over those samples: %v", cfg.WhitenHead))
	if !cfg.WhitenHead {
		return nil
	}
	plain := cfg
	plain.WhitenHead = false
	psvc, err := newService(plain)
	if err != nil {
		return err
	}
	if _, zs, err = psvc.ClassifyFeatures(ctx, "", feats, 1); err != nil {
		return err
	}
	r.add("zero-shot, head not whitened", accuracy(zs, labels), n, "")
	return nil
}

// validationSet extracts the held-out training images that tune α and β (none when cfg.Validation is 0).
func (r *Report) validationSet(ctx context.Context, svc *classify.Service, train *dataset.Set, progress io.Writer) error {
	if r.cfg.Validation == 0 {
		return nil
	}
	vc, vl, err := canvasesOf(train, seq(r.cfg.Validation, train.Len()-r.cfg.Validation))
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "eval classify: extracting %d held-out training images (α/β tuning)\n", len(vc))
	vf, err := svc.Featurizer().Canvases(ctx, vc)
	if err != nil {
		return err
	}
	r.val = &validation{feats: vf, labels: vl}
	return nil
}
