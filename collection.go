package cachet

import (
	"context"
	"time"
)

// Collection is a named set of labels and sample images; building it makes a cache model that
// classification uses (TFUP over unlabelled samples, Tip-Adapter over labelled ones).
type Collection struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Labels    []string        `json:"labels"`
	Alpha     float64         `json:"alpha"` // weight of the cache's residual logits
	Beta      float64         `json:"beta"`  // sharpness of the cache's affinities
	Samples   int             `json:"samples"`
	Labelled  int             `json:"labelled"`
	Model     *CacheModelInfo `json:"model,omitempty"` // nil until built
	CreatedAt time.Time       `json:"created_at"`
}

// CacheModelInfo describes a collection's active cache model.
type CacheModelInfo struct {
	ID           int64     `json:"id"`
	Method       string    `json:"method"`      // "tfup" or "tip-adapter"
	FeatureKey   string    `json:"feature_key"` // model id, pooled blocks and t_ref of its features
	Entries      int       `json:"entries"`
	PerClass     int       `json:"per_class"`
	Samples      int       `json:"samples"`
	Alpha        float64   `json:"alpha"`                    // the α and β it scores with: the collection's, tuned at build, or a propagated cache's own
	Beta         float64   `json:"beta"`                     //
	Values       string    `json:"values"`                   // "labels" (one-hot votes), "solved" or "propagated" (every sample, propagated distributions)
	Lambda       float64   `json:"lambda,omitempty"`         // the ridge solved values were solved with
	Whitening    int       `json:"whitening_rank,omitempty"` // directions of the samples' whitened space (0: none)
	BuildSeconds float64   `json:"build_seconds"`
	BuiltAt      time.Time `json:"built_at"`
}

// NewCollection asks for a collection; Alpha and Beta default to TFUP's 0.3 and 1 when nil.
type NewCollection struct {
	Name   string
	Labels []string
	Alpha  *float64
	Beta   *float64
}

// Sample is an uploaded image (PNG or JPEG bytes) with an optional label (one of the collection's).
type Sample struct {
	Image []byte
	Label string
}

// BuildRequest asks for a (re)build; Method "" picks Tip-Adapter when the collection has labelled samples
// and TFUP otherwise.
type BuildRequest struct {
	Method string
	// Values (Tip-Adapter): "labels" (default, each labelled sample votes for its label) or "solved"
	// (the votes solved in closed form to fit the labelled samples); Lambda is the solve's ridge (nil: the
	// default).
	Values string
	Lambda *float64
	// Tune (Tip-Adapter) picks α and β (and λ) for this model by leave-one-out accuracy on the labelled
	// samples instead of using the collection's α and β.
	Tune bool
	// Whiten fits the collection's samples' principal directions and classifies in their whitened space
	// (classify.FitWhitening); nil: on for TFUP over enough samples, off for Tip-Adapter.
	Whiten *bool
	// Propagate spreads what is known about the samples (labels, or the zero-shot head's distributions for
	// TFUP) over their neighbourhood graph and keeps every sample as a cache key with its propagated
	// distribution (classify.Propagate); it implies Whiten. nil: on over enough samples when some are
	// unlabelled, unless solved values or tuning were asked for.
	Propagate *bool
}

// ClassifyRequest classifies images against a collection's cache model, or against the model's built-in
// classes (zero-shot) when Collection is empty.
type ClassifyRequest struct {
	Collection string
	Images     [][]byte
	TopK       int // labels per image (default 3)
	// Rerank adds a second opinion to the logits: RerankNone (default) or RerankDiffusion.
	Rerank string
}

// Rerank methods of a ClassifyRequest.
const (
	RerankNone = ""
	// RerankDiffusion adds the diffusion classifier's logits (every label must be one the model can
	// draw): a few tenths of a point more accurate for about 0.4 s an image.
	RerankDiffusion = "diffusion"
)

// LabelScore is one label's share of an image's prediction: its probability and the two logit parts.
type LabelScore struct {
	Label       string  `json:"label"`
	Probability float64 `json:"probability"`
	ZeroShot    float64 `json:"zero_shot_logit"`
	Cache       float64 `json:"cache_logit"`
	Diffusion   float64 `json:"diffusion_logit,omitempty"` // the rerank's part (rerank "diffusion" only)
}

// ImagePrediction is one image's top labels, best first.
type ImagePrediction struct {
	Top []LabelScore `json:"top"`
}

// ClassifyTimings split a request's time (milliseconds).
type ClassifyTimings struct {
	FeaturesMS float64 `json:"features_ms"`
	QueryMS    float64 `json:"query_ms"`
	ScoringMS  float64 `json:"scoring_ms"`
	RerankMS   float64 `json:"rerank_ms,omitempty"`
}

// ClassifyResult answers a ClassifyRequest.
type ClassifyResult struct {
	Collection   string            `json:"collection,omitempty"`
	CacheModel   int64             `json:"cache_model,omitempty"` // the cache model used (0: zero-shot only)
	Method       string            `json:"method"`                // "zero-shot", "tfup" or "tip-adapter"
	Rerank       string            `json:"rerank,omitempty"`      // the rerank added to the logits, if any
	CacheEntries int               `json:"cache_entries"`         // entries the model holds
	Neighbours   int               `json:"neighbours"`            // entries each image was scored against
	Predictions  []ImagePrediction `json:"predictions"`
	Timings      ClassifyTimings   `json:"timings"`
}

// Classifier is the classification service as its consumers (the API) see it.
type Classifier interface {
	CreateCollection(ctx context.Context, req NewCollection) (*Collection, error)
	Collection(ctx context.Context, id string) (*Collection, error)
	Collections(ctx context.Context) ([]Collection, error)
	AddSamples(ctx context.Context, id string, samples []Sample) (*Collection, error)
	Build(ctx context.Context, id string, req BuildRequest) (*Collection, error)
	Classify(ctx context.Context, req ClassifyRequest) (*ClassifyResult, error)
}
