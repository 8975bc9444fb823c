package cachet

import (
	"context"
	"time"
)

// The sampling a generation gets when it names none: guidance (lower with a subject, where more costs the
// adapters' identity), clean-image renormalisation, and the full-size redraw of a small scene's item
// (generate.Detail; not with a subject). Each was chosen by measurement: weights/base.md and
// weights/adapters.md give the numbers.
const (
	// DefaultSteps is the sampler's step budget: 2.2–2.5× faster than 50 steps at 40–42 dB PSNR against
	// them, faster and closer than any cached 50-step policy (bench/reports/stepcache-service).
	DefaultSteps           = 20
	DefaultGuidance        = 6.0
	DefaultSubjectGuidance = 4.0
	DefaultCleanRenorm     = 0.75
	DefaultDetail          = 0.65
)

// SpeedPreset is a named speed/fidelity choice of /v1/generate: the model's fastest measured setting (step
// count and step-cache policy, from its calibration file) keeping at least MinPSNR dB against 50 uncached
// steps on the service path.
type SpeedPreset struct {
	Name    string
	MinPSNR float64
}

// SpeedPresets are the speed presets, slowest first; DefaultSpeed is a request's when it names neither a
// speed nor steps nor a cache policy.
var SpeedPresets = []SpeedPreset{{"exact", 45}, {"balanced", 40}, {"fast", 35}, {"fastest", 30}}

const DefaultSpeed = "balanced"

// SpeedNames lists the presets' names.
func SpeedNames() []string {
	out := make([]string, len(SpeedPresets))
	for i, p := range SpeedPresets {
		out[i] = p.Name
	}
	return out
}

// DefaultGuidanceFor is the guidance scale of a generation that names none, with a subject or without.
func DefaultGuidanceFor(personalized bool) float64 {
	if personalized {
		return DefaultSubjectGuidance
	}
	return DefaultGuidance
}

// GenerateRequest is one generation as a client asks for it (POST /v1/generate).
type GenerateRequest struct {
	Prompt string `json:"prompt"`
	// SubjectID personalizes the images with a ready subject (its adapters inject the reference cache);
	// empty is plain text-to-image.
	SubjectID string `json:"subject_id,omitempty"`
	// N is how many images (default 1).
	N    int   `json:"n"`
	Seed int64 `json:"seed"`
	// Speed picks the steps and the step-cache policy by fidelity: "exact", "balanced", "fast" or "fastest"
	// (SpeedPresets; GET /v1/catalog lists what each is on this model). Not with steps or cache. A request
	// naming none of the three gets DefaultSpeed.
	Speed string `json:"speed,omitempty"`
	// Steps is the sampler's budget (default: the speed preset's).
	Steps int `json:"steps"`
	// Guidance is the classifier-free guidance scale (default DefaultGuidanceFor: 6, or 4 with a subject;
	// 1 turns it off).
	Guidance *float64 `json:"guidance,omitempty"`
	// GuidanceRescale φ in [0, 1] counters guidance's over-exposure (0, the default, is off).
	GuidanceRescale float64 `json:"guidance_rescale,omitempty"`
	// CleanRenorm φ in [0, 1] moves each guided step's clean-image prediction towards the conditional one's
	// mean and spread, countering guidance's over-exposure (default DefaultCleanRenorm; 0 turns it off).
	CleanRenorm *float64 `json:"clean_renorm,omitempty"`
	// NegativePrompt steers the images away from what it describes, in the model's words (for the default
	// model, e.g. "a small in the center": the prompt less its class word, or "a coat"); NegativeGuidance
	// scales that push (default 1; it adds to guidance). Not with a subject.
	NegativePrompt   string   `json:"negative_prompt,omitempty"`
	NegativeGuidance *float64 `json:"negative_guidance,omitempty"`
	// ReferenceGuidance says what guidance scales when a subject is given: "joint" (subject and prompt,
	// the default and the best identity measured), "prompt" (the subject enters once) or "subject" (the
	// prompt enters once). eval/reports/personalization compares them.
	ReferenceGuidance string      `json:"reference_guidance,omitempty"`
	Cache             CachePolicy `json:"cache"`
	// Detail, above 0, redraws a small item at full size from that sampler time after the sample and shrinks
	// it back into its scene (image-to-image; the default model draws large items far better than small
	// ones); DetailSettle, above 0, then redraws the whole scene from that time. Not with a subject.
	// Absent, detail is DefaultDetail for a small scene of the default model without a subject; 0 turns it off.
	Detail       *float64 `json:"detail,omitempty"`
	DetailSettle float64  `json:"detail_settle,omitempty"`
	// Output is "inline" (base64 PNGs in the answer, the default) or "url" (PNGs stored in S3 under
	// generations/{id}.png, answered with presigned URLs).
	Output string `json:"output,omitempty"`
	// Async answers 202 with the queued job at once instead of waiting for the images.
	Async bool `json:"async,omitempty"`
}

// CachePolicy names a step-cache policy and its parameters (stepcache.Config on the wire).
type CachePolicy struct {
	Name   string             `json:"name"`
	Params map[string]float64 `json:"params,omitempty"`
}

// GenerateResult is a generation's answer.
type GenerateResult struct {
	ID        string `json:"id"`
	Prompt    string `json:"prompt"` // the canonical form of the request's prompt
	SubjectID string `json:"subject_id,omitempty"`
	Model     string `json:"model"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	// Guidance and CleanRenorm are what the images were sampled with (the defaults where the request named
	// none).
	Guidance    float64 `json:"guidance"`
	CleanRenorm float64 `json:"clean_renorm"`
	// Detail is the full-size redraw's start time (0: none; large scenes and subjects get none).
	Detail float64 `json:"detail"`
	// Speed is the speed preset that chose the steps and the policy ("" when the request chose them).
	Speed string `json:"speed,omitempty"`
	// BatchSize is how many requests shared the sampler batch that drew the images (1: alone).
	BatchSize int              `json:"batch_size"`
	Images    []GeneratedImage `json:"images"`
	Timings   GenerateTimings  `json:"timings"`
	Cache     StepCacheStats   `json:"cache"`
	Reference *ReferenceStats  `json:"reference,omitempty"`
}

// GeneratedImage is one PNG: inline (base64 in JSON) or stored (key and a presigned URL).
type GeneratedImage struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
	PNG   []byte `json:"png_base64,omitempty"`
	Key   string `json:"key,omitempty"`
	URL   string `json:"url,omitempty"`
}

// GenerateTimings are milliseconds: the whole request, the wait for the model, loading the subject's
// cache, the sampler (and each of its steps), and encoding/storing the images.
type GenerateTimings struct {
	TotalMS     float64   `json:"total_ms"`
	QueueMS     float64   `json:"queue_ms"`
	ReferenceMS float64   `json:"reference_ms"`
	SamplingMS  float64   `json:"sampling_ms"`
	OutputMS    float64   `json:"output_ms"`
	StepMS      []float64 `json:"step_ms"`
}

// Millis is d in the milliseconds the timings report.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// StepCacheStats is what the request's step-cache policy did (units are blocks or sublayers).
type StepCacheStats struct {
	Policy   string `json:"policy"`
	Steps    int    `json:"steps"`
	Computed int    `json:"computed_units"`
	Reused   int    `json:"reused_units"`
	Forecast int    `json:"forecast_units"`
	// ComputeFraction estimates the share of the uncached compute spent (units are equal-cost sublayers or
	// blocks; the per-step overheads outside them are ignored).
	ComputeFraction float64 `json:"compute_fraction"`
	// ExtraBytes is the most memory the policy held in cached features at once.
	ExtraBytes int64 `json:"extra_bytes"`
}

// ReferenceStats describes the subject cache a personalized request used.
type ReferenceStats struct {
	Tokens   int   `json:"tokens"`
	Blocks   []int `json:"blocks"`
	Bytes    int64 `json:"bytes"`     // decoded, in memory
	CacheHit bool  `json:"cache_hit"` // served from the in-memory LRU
}

// Generator serves POST /v1/generate.
type Generator interface {
	Generate(ctx context.Context, req GenerateRequest) (*GenerateResult, error)
	// Validate checks a request without running it (before it is queued).
	Validate(req GenerateRequest) error
}

// Upload is one uploaded file as received.
type Upload struct {
	Filename string
	Data     []byte
}

// NewSubject is a subject as uploaded (POST /v1/subjects).
type NewSubject struct {
	Name   string
	Class  string // optional: the item's class name
	Images []Upload
	// IdempotencyKey (the POST's Idempotency-Key) makes a repeated upload answer the first one's subject.
	IdempotencyKey string
}

// SubjectQuery pages through subjects, newest first.
type SubjectQuery struct {
	Limit  int           // 1…200, default 50
	Offset int           // ≥ 0
	Status SubjectStatus // optional filter
}

// Normalize fills the query's defaults (50 subjects) and checks it.
func (q *SubjectQuery) Normalize() error {
	if q.Limit == 0 {
		q.Limit = 50
	}
	switch {
	case q.Limit < 1 || q.Limit > 200:
		return Errorf(CodeInvalidArgument, "limit must be between 1 and 200 (got %d)", q.Limit)
	case q.Offset < 0:
		return Errorf(CodeInvalidArgument, "offset must not be negative (got %d)", q.Offset)
	case q.Status != "" && q.Status != SubjectPending && q.Status != SubjectReady && q.Status != SubjectFailed:
		return Errorf(CodeInvalidArgument, "status must be pending, ready or failed (got %q)", q.Status)
	}
	return nil
}

// SimilarK is the number of neighbours a similar-subjects query asks for: 5 when it names none, 1…100.
func SimilarK(k int) (int, error) {
	if k == 0 {
		k = 5
	}
	if k < 1 || k > 100 {
		return 0, Errorf(CodeInvalidArgument, "k must be between 1 and 100 (got %d)", k)
	}
	return k, nil
}

// UploadLimits bound a subject upload; the API enforces the byte limits while it reads the body.
type UploadLimits struct {
	MaxImages     int   `json:"max_images"`
	MaxImageBytes int64 `json:"max_image_bytes"`
	MaxTotalBytes int64 `json:"max_total_bytes"`
}

// SubjectService serves /v1/subjects.
type SubjectService interface {
	CreateSubject(ctx context.Context, in NewSubject) (*Subject, error)
	Subject(ctx context.Context, id string) (*Subject, error)
	Subjects(ctx context.Context, q SubjectQuery) ([]*Subject, error)
	DeleteSubject(ctx context.Context, id string) error
	SimilarSubjects(ctx context.Context, id string, k int) ([]*SimilarSubject, error)
	RetrySubject(ctx context.Context, id string) (*Subject, error)
	// SubjectReference is reference image n of a subject, as stored (PNG).
	SubjectReference(ctx context.Context, id string, n int) ([]byte, error)
	UploadLimits() UploadLimits
}

// Sampling is the guidance scale and clean-image renormalisation the request asks for, the defaults where
// it names none.
func (r GenerateRequest) Sampling() (guidance, cleanRenorm float64) {
	guidance, cleanRenorm = DefaultGuidanceFor(r.SubjectID != ""), DefaultCleanRenorm
	if r.Guidance != nil {
		guidance = *r.Guidance
	}
	if r.CleanRenorm != nil {
		cleanRenorm = *r.CleanRenorm
	}
	return guidance, cleanRenorm
}
