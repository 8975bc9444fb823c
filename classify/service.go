package classify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/storage"
)

// Config is the classification service's configuration.
type Config struct {
	Blocks []int   // pooled blocks (DefaultBlocks)
	Grid   int     // pooling grid per block (DefaultGrid)
	TRef   float64 // the extraction pass's model time
	// Center removes the labels' mean prototype from every feature (see Head.Center): it costs zero-shot
	// little and makes TFUP's pseudo-labels much better (docs/classification.md).
	Center bool
	// Recenter passes every input canvas through images.Recenter before its features: a shifted, shrunk or
	// enlarged item is cropped, scaled and centred the way Fashion-MNIST's items were (the robustness
	// section of eval/reports/classify-robustness measures it; on by default). It changes the feature key:
	// collections built without it answer 409 until rebuilt.
	Recenter bool
	// Turns (degrees, at most MaxTurns): each feature is the mean over copies of its image turned by each
	// angle, so an item a user's photo shows a little turned lands nearer its upright class. Off by
	// default: −10, 0, 10 took zero-shot on items turned ±10° from 63.7 to 70.5 % and TFUP from 67.8 to
	// 74.8 % (clean unchanged), for three extraction passes per image (docs/classification.md). It
	// changes the feature key, the prototypes' too.
	Turns []float64
	// WhitenHead classifies zero-shot (no collection) in the whitened space of the model's own prototype
	// samples (FitWhitening over every class's samples, rank min(32, all samples/8); docs/classification.md
	// has the gain). Collections whiten over their own samples instead.
	WhitenHead bool
	Head       HeadConfig
	// Neighbours is how many nearest cache keys pgvector returns per image (0 or more than the cache: all).
	Neighbours int
	MaxImages  int // images per request
	MaxBatch   int // images per extraction forward
	// MaxSolvedSamples bounds the labelled samples of a build with solved values or tune (0:
	// MaxSolvedSamples).
	MaxSolvedSamples int
}

// DefaultConfig is the measured default (README, "Classification").
func DefaultConfig() Config {
	return Config{Blocks: slices.Clone(DefaultBlocks), Grid: DefaultGrid, TRef: DefaultTRef, Center: true, Recenter: true, WhitenHead: true, Head: DefaultHeadConfig(),
		Neighbours: 256, MaxImages: 256, MaxBatch: 64, MaxSolvedSamples: MaxSolvedSamples}
}

// Limits on what a collection may hold.
const (
	MaxLabels    = 100
	MaxLabelLen  = 64
	MaxName      = 200
	defaultTopK  = 3
	modelsCached = 32
)

// Service is the classification service: collections, builds and classification on one model.
type Service struct {
	st  store
	w   *model.Worker
	dit *model.DiT
	z   *Featurizer
	cfg Config

	protoMu sync.Mutex // one prototype sampling at a time (it occupies the model for a while)

	mu      sync.Mutex
	builtin *Head
	models  map[int64]*Model // built models are immutable: cached by id
	order   []int64
}

var _ cachet.Classifier = (*Service)(nil)

// New builds the service over the model on worker w; modelID names its weights (featurecache.WeightsID).
func New(db *storage.DB, w *model.Worker, dit *model.DiT, modelID string, cfg Config) (*Service, error) {
	if err := cfg.Head.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxImages <= 0 || cfg.MaxBatch <= 0 || cfg.Neighbours < 0 || cfg.MaxSolvedSamples < 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: max images, max batch must be positive and neighbours, max solved samples ≥ 0")
	}
	if d := len(cfg.Blocks) * cfg.Grid * cfg.Grid * dit.Cfg.Width; d > MaxDims {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: %d blocks × %d×%d regions × width %d = %d values exceed pgvector's %d; pool fewer blocks or a coarser grid",
			len(cfg.Blocks), cfg.Grid, cfg.Grid, dit.Cfg.Width, d, MaxDims)
	}
	return NewWithFeatures(db, w, dit, modelID, dit, modelID, cfg)
}

// NewWithFeatures is New with the feature pass on a model of its own: features (weights featuresID), a
// copy of dit distilled to tolerate moved, turned and scaled items (train.Features). dit still samples
// the zero-shot head's prototypes and runs the diffusion rerank.
func NewWithFeatures(db *storage.DB, w *model.Worker, dit *model.DiT, modelID string, features *model.DiT, featuresID string, cfg Config) (*Service, error) {
	if features.Cfg.String() != dit.Cfg.String() {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "classify: the feature model (%s) is not the model's architecture (%s)", features.Cfg, dit.Cfg)
	}
	z, err := NewFeaturizerFor(w, features, featuresID, cfg)
	if err != nil {
		return nil, err
	}
	if featuresID != modelID {
		z.sampler = modelID
	}
	return &Service{st: store{db.Pool}, w: w, dit: dit, z: z, cfg: cfg, models: map[int64]*Model{}}, nil
}

// NoFeatureWeights asks for the model's own feature pass even when distilled feature weights lie
// beside it.
const NoFeatureWeights = "none"

// FeaturesFile is the distilled feature weights' name beside the denoiser's weights.
const FeaturesFile = "features.safetensors"

// TeacherKey is the feature weights' metadata naming the weights (featurecache.WeightsID) they were
// distilled from.
const TeacherKey = "features.teacher_id"

// ResolveFeatureWeights is the feature pass's weights for the denoiser's weights (weightsID: their
// featurecache.WeightsID) and a setting: the setting itself when it names a file; NoFeatureWeights: none
// (""); empty: FeaturesFile beside weights when it was distilled from exactly those weights, otherwise
// none. A user's own denoiser so keeps its own features unless features were distilled from it.
func ResolveFeatureWeights(weights, weightsID, setting string) (string, error) {
	switch setting {
	case NoFeatureWeights:
		return "", nil
	case "":
	default:
		return setting, nil
	}
	beside := filepath.Join(filepath.Dir(weights), FeaturesFile)
	if _, err := os.Stat(beside); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	f, _, err := model.ReadWeightsFile(beside)
	if err != nil {
		return "", cachet.InvalidField("classify_feature_weights", "%s beside the weights cannot be read (pass --classify-feature-weights %s to use the model's own features): %v", beside, NoFeatureWeights, err)
	}
	if f.Metadata[TeacherKey] != weightsID {
		return "", nil
	}
	return beside, nil
}

// LoadFeatureModel loads feature weights (train.Features) on w with their feature key; a file that
// cannot be read or loaded is the flag's invalid_argument. release frees the model.
func LoadFeatureModel(ctx context.Context, w *model.Worker, path string) (features *model.DiT, featuresID string, release func(), err error) {
	if featuresID, err = featurecache.WeightsID(path); err != nil {
		return nil, "", nil, cachet.InvalidField("classify_feature_weights", "%s cannot be read: %v", path, err)
	}
	if features, release, err = model.LoadOn(ctx, w, path); err != nil {
		return nil, "", nil, cachet.InvalidField("classify_feature_weights", "%s: %v", path, err)
	}
	return features, featuresID, release, nil
}

// Featurizer is the service's feature pass (for evaluation and benchmarks).
func (s *Service) Featurizer() *Featurizer { return s.z }

// CreateCollection validates and stores a new, empty collection.
func (s *Service) CreateCollection(ctx context.Context, req cachet.NewCollection) (*cachet.Collection, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxName {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name must be 1…%d characters", MaxName)
	}
	labels, err := cleanLabels(req.Labels)
	if err != nil {
		return nil, err
	}
	alpha, beta := DefaultAlpha, DefaultBeta
	if req.Alpha != nil {
		alpha = *req.Alpha
	}
	if req.Beta != nil {
		beta = *req.Beta
	}
	if math.IsNaN(alpha) || alpha < 0 || alpha > 1000 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "alpha must be between 0 and 1000 (got %v)", alpha)
	}
	if math.IsNaN(beta) || beta <= 0 || beta > 1000 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "beta must be in (0, 1000] (got %v)", beta)
	}
	return s.st.createCollection(ctx, name, labels, alpha, beta)
}

func cleanLabels(in []string) ([]string, error) {
	if len(in) < 2 || len(in) > MaxLabels {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "labels: give 2…%d class names (got %d)", MaxLabels, len(in))
	}
	out := make([]string, len(in))
	for i, l := range in {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || utf8.RuneCountInString(l) > MaxLabelLen:
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "label %d must be 1…%d characters", i, MaxLabelLen)
		case slices.Contains(out[:i], l):
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "label %q appears twice", l)
		}
		out[i] = l
	}
	return out, nil
}

// Collection reads one collection.
func (s *Service) Collection(ctx context.Context, id string) (*cachet.Collection, error) {
	return s.st.collection(ctx, id)
}

// Collections lists every collection, oldest first.
func (s *Service) Collections(ctx context.Context) ([]cachet.Collection, error) {
	return s.st.collections(ctx)
}

// AddSamples decodes, checks and featurises images, then stores them; nothing is stored unless all are good.
func (s *Service) AddSamples(ctx context.Context, id string, samples []cachet.Sample) (*cachet.Collection, error) {
	c, err := s.st.collection(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 || len(samples) > s.cfg.MaxImages {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "give 1…%d samples per request (got %d)", s.cfg.MaxImages, len(samples))
	}
	canvases := make([][]uint8, len(samples))
	labels := make([]int, len(samples))
	for i, smp := range samples {
		if canvases[i], err = decodeImage(ctx, fmt.Sprintf("sample %d", i), smp.Image); err != nil {
			return nil, err
		}
		labels[i] = -1
		if l := strings.TrimSpace(smp.Label); l != "" {
			if labels[i] = slices.Index(c.Labels, l); labels[i] < 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "sample %d: label %q is not one of the collection's labels %v", i, l, c.Labels)
			}
		}
	}
	if _, err := s.AddCanvases(ctx, id, canvases, labels, nil); err != nil {
		return nil, err
	}
	return s.st.collection(ctx, id)
}

// decodeImage validates an uploaded image and returns its canvas (images.Limits.DecodeContext: it waits
// for the process's decode budget while ctx lives).
func decodeImage(ctx context.Context, what string, data []byte) ([]uint8, error) {
	d, err := images.DefaultLimits().DecodeContext(ctx, what, data)
	if err != nil {
		return nil, err
	}
	return d.Canvas[:], nil
}

// AddCanvases stores canvases (labels[i] an index into the collection's labels, or −1) and returns their
// ids. feats may carry features already computed by this service's Featurizer (nil: extract them).
func (s *Service) AddCanvases(ctx context.Context, id string, canvases [][]uint8, labels []int, feats [][]float32) ([]int64, error) {
	if len(labels) != len(canvases) || (feats != nil && len(feats) != len(canvases)) {
		return nil, fmt.Errorf("classify: %d canvases, %d labels, %d features", len(canvases), len(labels), len(feats))
	}
	if feats == nil {
		var err error
		if feats, err = s.z.Canvases(ctx, canvases); err != nil {
			return nil, err
		}
	}
	rows := make([]sampleRow, len(canvases))
	for i := range rows {
		rows[i] = sampleRow{pixels: canvases[i], key: s.z.Key(), features: feats[i]}
		if labels[i] >= 0 {
			l := labels[i]
			rows[i].label = &l
		}
	}
	return s.st.addSamples(ctx, id, rows)
}

func (s *Service) cachedModel(id int64) *Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.models[id]
}

func (s *Service) keepModel(m *Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.models[m.ID]; ok {
		return
	}
	s.models[m.ID] = m
	s.order = append(s.order, m.ID)
	if len(s.order) > modelsCached {
		delete(s.models, s.order[0])
		s.order = s.order[1:]
	}
}

// Classify decodes the request's images and classifies them.
func (s *Service) Classify(ctx context.Context, req cachet.ClassifyRequest) (*cachet.ClassifyResult, error) {
	q := Query{Collection: req.Collection, TopK: req.TopK, Rerank: req.Rerank}
	if err := s.checkQuery(q, len(req.Images)); err != nil {
		return nil, err
	}
	canvases := make([][]uint8, len(req.Images))
	for i, img := range req.Images {
		var err error
		if canvases[i], err = decodeImage(ctx, fmt.Sprintf("image %d", i), img); err != nil {
			return nil, err
		}
	}
	return s.ClassifyCanvases(ctx, q, canvases)
}

// Query is what a classification asks for besides the images.
type Query struct {
	Collection string // empty: the model's built-in classes, zero-shot
	TopK       int    // labels per image (0: the default)
	Rerank     string // cachet.RerankNone or cachet.RerankDiffusion
}

// checkQuery validates a query for n images before any work is done.
func (s *Service) checkQuery(q Query, n int) error {
	if err := checkTopK(q.TopK); err != nil {
		return err
	}
	maxImages := s.cfg.MaxImages
	switch q.Rerank {
	case cachet.RerankNone:
	case cachet.RerankDiffusion:
		maxImages = min(maxImages, MaxRerankImages)
	default:
		return cachet.Errorf(cachet.CodeInvalidArgument, "rerank must be empty or %q (got %q)", cachet.RerankDiffusion, q.Rerank)
	}
	if n == 0 || n > maxImages {
		if q.Rerank != cachet.RerankNone {
			return cachet.Errorf(cachet.CodeInvalidArgument, "give 1…%d images with rerank %q (got %d); it costs about 0.4 s an image", maxImages, q.Rerank, n)
		}
		return cachet.Errorf(cachet.CodeInvalidArgument, "give 1…%d images (got %d)", maxImages, n)
	}
	return nil
}

// ClassifyCanvases classifies 32×32 canvases.
func (s *Service) ClassifyCanvases(ctx context.Context, q Query, canvases [][]uint8) (*cachet.ClassifyResult, error) {
	if err := s.checkQuery(q, len(canvases)); err != nil {
		return nil, err
	}
	start := time.Now()
	feats, err := s.z.Canvases(ctx, canvases)
	if err != nil {
		return nil, err
	}
	fms := cachet.Millis(time.Since(start))
	res, labels, all, err := s.score(ctx, q.Collection, feats)
	if err != nil {
		return nil, err
	}
	res.Timings.FeaturesMS = fms
	if q.Rerank == cachet.RerankDiffusion {
		start := time.Now()
		weight := DiffusionRerankWeight
		if q.Collection == "" {
			weight = DiffusionRerankWeightZeroShot
		}
		if err := s.rerankDiffusion(ctx, labels, canvases, all, weight); err != nil {
			return nil, err
		}
		res.Rerank, res.Timings.RerankMS = q.Rerank, cachet.Millis(time.Since(start))
	}
	predict(res, labels, all, q.TopK)
	return res, nil
}

func checkTopK(k int) error {
	if k < 0 || k > MaxLabels {
		return cachet.Errorf(cachet.CodeInvalidArgument, "top_k must be 0 (default %d) … %d (got %d)", defaultTopK, MaxLabels, k)
	}
	return nil
}

// ClassifyFeatures classifies raw pooled features (from Featurizer) and also returns every image's full
// scores (label order = the head's).
func (s *Service) ClassifyFeatures(ctx context.Context, collection string, feats [][]float32, topK int) (*cachet.ClassifyResult, []Scores, error) {
	if err := checkTopK(topK); err != nil {
		return nil, nil, err
	}
	res, labels, all, err := s.score(ctx, collection, feats)
	if err != nil {
		return nil, nil, err
	}
	predict(res, labels, all, topK)
	return res, all, nil
}

// score scores features against the collection's active model (or the built-in head), returning the
// result without predictions, the model's labels and every image's scores.
func (s *Service) score(ctx context.Context, collection string, feats [][]float32) (*cachet.ClassifyResult, []string, []Scores, error) {
	res := &cachet.ClassifyResult{Collection: collection, Method: "zero-shot"}
	var m *Model
	var nb [][]int
	var projected [][]float32
	if collection == "" {
		h, err := s.BuiltinHead(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		m = &Model{Head: h}
	} else {
		start := time.Now()
		var err error
		if m, projected, nb, err = s.lookup(ctx, collection, feats); err != nil {
			return nil, nil, nil, err
		}
		res.Timings.QueryMS = cachet.Millis(time.Since(start))
		res.CacheModel, res.Method, res.CacheEntries = m.ID, string(m.Method), len(m.Entries)
		res.Neighbours = len(m.Entries)
		for _, n := range nb {
			res.Neighbours = min(res.Neighbours, len(n))
		}
	}
	start := time.Now()
	all := make([]Scores, len(feats))
	if projected == nil {
		var err error
		if projected, err = project(m.Head, feats); err != nil {
			return nil, nil, nil, err
		}
	}
	for i, f := range projected {
		var entries []Entry
		if nb != nil {
			entries = make([]Entry, len(nb[i]))
			for j, idx := range nb[i] {
				entries[j] = m.Entries[idx]
			}
		}
		all[i] = m.Score(f, entries)
	}
	res.Timings.ScoringMS = cachet.Millis(time.Since(start))
	return res, m.Head.Labels, all, nil
}

// predict fills the result's predictions: each image's topK (0: the default) labels.
func predict(res *cachet.ClassifyResult, labels []string, all []Scores, topK int) {
	if topK == 0 {
		topK = defaultTopK
	}
	res.Predictions = make([]cachet.ImagePrediction, len(all))
	for i, sc := range all {
		res.Predictions[i] = top(labels, sc, topK)
	}
}

// project maps raw features into the head's space (where a model's keys live).
func project(h *Head, feats [][]float32) ([][]float32, error) {
	out := make([][]float32, len(feats))
	for i, raw := range feats {
		if len(raw) != h.InputDims() {
			return nil, fmt.Errorf("classify: feature %d has %d values, the head %d", i, len(raw), h.InputDims())
		}
		out[i] = h.Project(raw)
	}
	return out, nil
}

// lookup reads the collection's active model and each feature's nearest keys from one snapshot, so a
// concurrent rebuild is invisible: the model and its entries are the old ones or the new ones. The
// features are projected into the model's space (returned) before pgvector compares them with its keys.
func (s *Service) lookup(ctx context.Context, collection string, feats [][]float32) (*Model, [][]float32, [][]int, error) {
	tx, err := s.st.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("classify: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	hdr, key, n, err := activeModel(ctx, tx, collection)
	if err != nil {
		return nil, nil, nil, err
	}
	if key != s.z.Key() {
		return nil, nil, nil, cachet.Errorf(cachet.CodeConflict, "the collection's cache model was built from features %s, this server computes %s; rebuild the collection", key, s.z.Key())
	}
	m := s.cachedModel(hdr.ID)
	if m == nil {
		if err := loadEntries(ctx, tx, hdr); err != nil {
			return nil, nil, nil, err
		}
		if len(hdr.Entries) != n {
			return nil, nil, nil, fmt.Errorf("classify: cache model %d holds %d entries, its header says %d", hdr.ID, len(hdr.Entries), n)
		}
		m = hdr
		s.keepModel(m)
	}
	k := s.cfg.Neighbours
	if m.Values == ValuesPropagated && (k <= 0 || k > propagateCandidates) {
		k = propagateCandidates // it scores the nearest few; pgvector's ranking is re-checked exactly
	}
	if k <= 0 || k > n {
		k = n
	}
	if len(feats) == 0 {
		return m, nil, nil, nil
	}
	projected, err := project(m.Head, feats)
	if err != nil {
		return nil, nil, nil, err
	}
	nb, err := neighbours(ctx, tx, m.ID, projected, k)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, projected, nb, nil
}

// top returns the k most probable labels with their logit parts.
func top(labels []string, s Scores, k int) cachet.ImagePrediction {
	p := Softmax(s.Logits, 1)
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return -cmpFloat(p[a], p[b]) })
	out := cachet.ImagePrediction{Top: make([]cachet.LabelScore, 0, min(k, len(idx)))}
	for _, c := range idx[:min(k, len(idx))] {
		ls := cachet.LabelScore{Label: labels[c], Probability: p[c], ZeroShot: s.ZeroShot[c], Cache: s.Cache[c]}
		if s.Diffusion != nil {
			ls.Diffusion = s.Diffusion[c]
		}
		out.Top = append(out.Top, ls)
	}
	return out
}

// DeleteCollection removes a collection with its samples and cache models.
func (s *Service) DeleteCollection(ctx context.Context, id string) error {
	return s.st.deleteCollection(ctx, id)
}

// Entries lists the active cache model's entries (which sample, which pseudo-label): for evaluation.
func (s *Service) Entries(ctx context.Context, id string) ([]EntryInfo, error) {
	return s.st.entries(ctx, id)
}

// ActiveModel loads a collection's active cache model with all its entries (evaluation: tuning α and β
// scores the model locally).
func (s *Service) ActiveModel(ctx context.Context, id string) (*Model, error) {
	m, _, _, err := s.lookup(ctx, id, nil)
	return m, err
}
