package model

import (
	"math"

	"github.com/cachetlab/cachet"
)

// SampleRequest asks for len(Prompts) (text models) or len(Labels) (label models) images.
type SampleRequest struct {
	Prompts  []string
	Labels   []int
	Seed     int64   // image i uses the noise stream (Seed, i): the same seed gives the same images
	Steps    int     // sampler steps (≥ 1)
	Guidance float64 // classifier-free guidance scale; ≤ 1 disables the unconditional branch
	// NegativePrompts (text models), one per prompt, add a guidance term of their own:
	// NegativeGuidance·(v − v_negative), pushing each image away from what its negative prompt draws. A
	// negative that shares the prompt's other words (the prompt less its class word) pushes only the words
	// that differ. It adds to classifier-free guidance (or stands alone with Guidance ≤ 1), at the cost of
	// one more forward pass per step.
	NegativePrompts  []string
	NegativeGuidance float64
	// GuidanceRescale φ ∈ [0, 1] blends the guided velocity with itself rescaled to the conditional one's
	// per-image standard deviation (Lin et al. 2024): guidance then sharpens without over-exposing. 0 = off.
	GuidanceRescale float64
	// CleanRenorm φ ∈ [0, 1] blends the guided clean-image prediction x0 = x − t·v with itself
	// renormalised to the conditional prediction's per-image mean and standard deviation: guidance keeps
	// its shapes but not the exposure it adds. 0 = off.
	CleanRenorm float64
	// Experimental holds sampler settings that were measured and not adopted (weights/base.md): for
	// studies through `cachet eval base`, not the service.
	Experimental
	Cache StepCache
	// Inject adds attention injection (a subject's adapters) to every forward pass, merged with the hooks
	// Cache passes. With guidance only the conditional rows see the reference: the unconditional rows take
	// the null reference, so guidance pushes towards the subject as well as the prompt.
	Inject *Injection
	// Noise, when set, replaces the seeded starting noise ([N, C, H, W]; parity tests and experiments).
	Noise []float32
	// Streams, when set (and Noise is not), gives each image its own noise stream instead of (Seed, i):
	// requests batched together keep the images they would draw alone.
	Streams []NoiseStream
	// Init, when set ([N, C, H, W], model units), makes the request an image-to-image one (flow models): the
	// sampler starts from Init noised to time Strength ∈ (0, 1] and runs the last ⌈Strength·Steps⌉ steps of
	// the schedule, so the result keeps Init's layout and redraws its detail.
	Init     []float32
	Strength float64
	// OnStep, when set, is called after each sampler step (on the model's worker: keep it cheap).
	OnStep func()
}

// Experimental are research-only sampler settings; their zero value is off.
type Experimental struct {
	// GuidanceProjection ∈ [0, 1] removes that share of the guidance term's component parallel to the
	// conditional prediction of the clean image (APG, Sadat et al. 2024): that component scales the image
	// (over-saturation: items brighter than the data), the orthogonal one carries the prompt. 0: plain CFG;
	// 1: APG's η = 0.
	GuidanceProjection float64
	// GuidanceInterval limits guidance to the steps whose time t (1 = noise, 0 = data) lies in (Lo, Hi];
	// outside it the step takes the conditional output alone (Kynkäänniemi et al. 2024: guidance at high
	// noise pulls samples towards a few prototypes). The zero value guides every step.
	GuidanceInterval Interval
	// Guide is autoguidance's weaker model (Karras et al. 2024), used when GuideScale > 1: the velocity
	// gains (GuideScale − 1)·(v − v_guide), extrapolating from the guide's conditional prediction to this
	// model's. Both see the same prompt, so it sharpens what the weaker model gets wrong without pushing
	// every attribute of the prompt (size, inversion) past the data as the unconditional branch does. It
	// adds to classifier-free guidance (Guidance > 1) or replaces it (Guidance ≤ 1). It must run on this
	// model's worker and device.
	Guide      *DiT
	GuideScale float64
	// PerturbedGuidance s adds s·(v − v_perturbed), where v_perturbed is this model's conditional prediction
	// with the self-attention maps of PerturbedBlocks replaced by the identity (perturbed-attention
	// guidance, Ahn et al. 2024): a weak version of the model made without training, which loses the
	// item's global structure, so the term pushes towards structure. One more forward pass per step. 0: off.
	PerturbedGuidance float64
	PerturbedBlocks   []int
	// TimeShift s warps the flow sampler's evenly spaced times, t ↦ s·t / (1 + (s−1)·t) (SD3's shift): s > 1
	// spends more steps at high noise, s < 1 at low noise, where fine detail is drawn. 0 or 1: even spacing.
	TimeShift float64
	// Stochasticity η ∈ [0, 1) (flow models): each step re-noises a share η of the predicted noise with fresh
	// seeded noise, an SDE-like sampler that forgets earlier steps' errors. 0: the deterministic Euler sampler.
	Stochasticity float64
	// StochasticInterval limits re-noising to the steps whose time t lies in (Lo, Hi] (zero value: every
	// step): at low noise the model draws fine detail that fresh noise would blur.
	StochasticInterval Interval
	// OptimizedScale (CFG-Zero*, Fan et al. 2025) scales each image's unconditional velocity by
	// s* = ⟨v_c, v_u⟩ / ‖v_u‖² before guidance, and ZeroInitSteps zeroes the first steps' velocity: early flow
	// velocities are least accurate, and guidance extrapolates their error.
	OptimizedScale bool
	ZeroInitSteps  int
}

// ImageToImageSteps is how many steps of a steps-long schedule an image-to-image request of the given
// strength runs: ⌈strength·steps⌉ (an ulp's tolerance, so 0.7·10 is 7).
func ImageToImageSteps(strength float64, steps int) int {
	return int(math.Ceil(strength*float64(steps) - 1e-9))
}

// validate refuses what this model cannot sample, with a message that names the setting. Defaults are
// the callers' (the generation service applies the product's).
func (m *DiT) validate(req *SampleRequest) error {
	if err := m.Cfg.ValidateSteps(req.Steps); err != nil {
		return err
	}
	switch {
	case m.batchSize(req) == 0:
		return cachet.Errorf(cachet.CodeInvalidArgument, "nothing to generate: give at least one prompt")
	case req.Noise != nil && len(req.Noise) != m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize:
		return cachet.Errorf(cachet.CodeInvalidArgument, "noise has %d values; %d images need %d", len(req.Noise), m.batchSize(req), m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize)
	case req.Init != nil && len(req.Init) != m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize:
		return cachet.Errorf(cachet.CodeInvalidArgument, "init images have %d values; %d images need %d", len(req.Init), m.batchSize(req), m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize)
	case req.Init != nil && (math.IsNaN(req.Strength) || req.Strength <= 0 || req.Strength > 1):
		return cachet.Errorf(cachet.CodeInvalidArgument, "strength must be above 0 and at most 1 (got %v)", req.Strength)
	case req.Init != nil && m.Cfg.Prediction != PredictFlow:
		return cachet.Errorf(cachet.CodeInvalidArgument, "image-to-image applies to flow-matching models only")
	case req.Init != nil && req.Cache != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "image-to-image does not combine with step caching")
	case math.IsNaN(req.Guidance) || req.Guidance < 0 || req.Guidance > 50:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance must be between 0 and 50 (got %v)", req.Guidance)
	case math.IsNaN(req.GuidanceRescale) || req.GuidanceRescale < 0 || req.GuidanceRescale > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance rescale must be between 0 and 1 (got %v)", req.GuidanceRescale)
	case math.IsNaN(req.CleanRenorm) || req.CleanRenorm < 0 || req.CleanRenorm > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "clean-image renormalisation must be between 0 and 1 (got %v)", req.CleanRenorm)
	case math.IsNaN(req.GuidanceProjection) || req.GuidanceProjection < 0 || req.GuidanceProjection > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance projection must be between 0 and 1 (got %v)", req.GuidanceProjection)
	case req.GuidanceProjection != 0 && m.Cfg.Prediction != PredictFlow:
		return cachet.Errorf(cachet.CodeInvalidArgument, "guidance projection applies to flow-matching models only")
	case math.IsNaN(req.TimeShift) || req.TimeShift < 0 || req.TimeShift > 20:
		return cachet.Errorf(cachet.CodeInvalidArgument, "time shift must be between 0 and 20 (got %v)", req.TimeShift)
	case req.TimeShift != 0 && req.TimeShift != 1 && m.Cfg.Prediction != PredictFlow:
		return cachet.Errorf(cachet.CodeInvalidArgument, "time shift applies to flow-matching models only")
	case math.IsNaN(req.Stochasticity) || req.Stochasticity < 0 || req.Stochasticity >= 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "stochasticity must be at least 0 and below 1 (got %v)", req.Stochasticity)
	case req.Stochasticity != 0 && m.Cfg.Prediction != PredictFlow:
		return cachet.Errorf(cachet.CodeInvalidArgument, "stochasticity applies to flow-matching models only")
	case req.ZeroInitSteps < 0 || req.ZeroInitSteps >= req.Steps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "zero-init steps must be between 0 and steps − 1 (got %d of %d)", req.ZeroInitSteps, req.Steps)
	case (req.ZeroInitSteps != 0 || req.OptimizedScale) && m.Cfg.Prediction != PredictFlow:
		return cachet.Errorf(cachet.CodeInvalidArgument, "CFG-Zero* (optimized scale, zero-init steps) applies to flow-matching models only")
	case req.NegativePrompts != nil && m.Cfg.Cond != CondText:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative prompts apply to text-conditioned models only")
	case req.NegativePrompts != nil && len(req.NegativePrompts) != len(req.Prompts):
		return cachet.Errorf(cachet.CodeInvalidArgument, "%d negative prompts for %d prompts: give one per prompt", len(req.NegativePrompts), len(req.Prompts))
	case math.IsNaN(req.NegativeGuidance) || req.NegativeGuidance < 0 || req.NegativeGuidance > 50:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative guidance must be between 0 and 50 (got %v)", req.NegativeGuidance)
	case req.NegativeGuidance > 0 && req.NegativePrompts == nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative guidance needs negative prompts")
	case req.NegativePrompts != nil && req.Inject != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "negative prompts do not combine with a subject's adapters")
	case math.IsNaN(req.PerturbedGuidance) || req.PerturbedGuidance < 0 || req.PerturbedGuidance > 50:
		return cachet.Errorf(cachet.CodeInvalidArgument, "perturbed-attention guidance must be between 0 and 50 (got %v)", req.PerturbedGuidance)
	case req.PerturbedGuidance > 0 && len(req.PerturbedBlocks) == 0:
		return cachet.Errorf(cachet.CodeInvalidArgument, "perturbed-attention guidance needs the blocks to perturb")
	case req.PerturbedGuidance > 0 && req.Inject != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "perturbed-attention guidance does not combine with a subject's adapters")
	}
	for _, b := range req.PerturbedBlocks {
		if b < 0 || b >= len(m.blocks) {
			return cachet.Errorf(cachet.CodeInvalidArgument, "perturbed block %d outside 0…%d", b, len(m.blocks)-1)
		}
	}
	if err := req.GuidanceInterval.Validate("guidance_interval"); err != nil {
		return err
	}
	if err := req.StochasticInterval.Validate("stochastic_interval"); err != nil {
		return err
	}
	if err := m.validateGuide(req); err != nil {
		return err
	}
	if m.Cfg.Cond == CondLabel {
		for _, l := range req.Labels {
			if l < 0 || l >= m.Cfg.NumClasses {
				return cachet.Errorf(cachet.CodeInvalidArgument, "class label %d outside 0…%d", l, m.Cfg.NumClasses-1)
			}
		}
	}
	return nil
}

// Interval is a range (Lo, Hi] of sampler time t ∈ [0, 1] (1 = pure noise); the zero value means all of it.
type Interval struct{ Lo, Hi float64 }

// Validate refuses bounds outside [0, 1] or Lo ≥ Hi (other than the zero value); what names the interval
// in the error.
func (iv Interval) Validate(field string) error {
	if iv == (Interval{}) {
		return nil
	}
	if math.IsNaN(iv.Lo) || math.IsNaN(iv.Hi) || iv.Lo < 0 || iv.Hi > 1 || iv.Lo >= iv.Hi {
		return cachet.InvalidField(field, "lo,hi must be 0 ≤ lo < hi ≤ 1 (got %v, %v)", iv.Lo, iv.Hi)
	}
	return nil
}

// Contains reports whether t lies in (Lo, Hi]; the zero value contains every t.
func (iv Interval) Contains(t float64) bool {
	return iv == (Interval{}) || (t > iv.Lo && t <= iv.Hi)
}
