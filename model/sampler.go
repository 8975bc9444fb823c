package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
)

// MaxSteps bounds a request's step count.
const MaxSteps = 1000

// Schedule is a request's discretisation, as policies see it.
type Schedule struct {
	Steps int
	// Times are the model-time values fed to the timestep embedding at each step (flow: 1000·t).
	Times []float64
	// Deltas are each step's signed size in the sampler's own variable (flow: t_{i+1} − t_i, negative).
	Deltas []float64
}

// StepCache is a per-request step-caching policy as the sampler sees it. Begin sees the schedule; Eval
// produces the model output for step i — by calling eval with the hooks it needs (nil for a plain pass) or
// by returning a reused/forecast output without calling it; End releases what the policy holds. Eval's
// result belongs to the sampler (return a Clone of anything kept).
type StepCache interface {
	Begin(s Schedule) error
	Eval(step int, eval func(h *Hooks) (*Feature, error)) (*Feature, error)
	End()
}

// SampleRequest asks for len(Prompts) (text models) or len(Labels) (label models) images.
type SampleRequest struct {
	Prompts  []string
	Labels   []int
	Seed     int64   // image i uses the noise stream (Seed, i): the same seed gives the same images
	Steps    int     // sampler steps (default 50)
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
	Cache          StepCache
	// Inject adds attention injection (a subject's adapters) to every forward pass, merged with the hooks
	// Cache passes. With guidance only the conditional rows see the reference: the unconditional rows take
	// the null reference, so guidance pushes towards the subject as well as the prompt.
	Inject *Injection
	// Noise, when set, replaces the seeded starting noise ([N, C, H, W]; parity tests and experiments).
	Noise []float32
}

// SampleResult holds the images [N, C, H, W] in model units (about −1…1) and the time of each step.
type SampleResult struct {
	N, C, H, W int
	Pixels     []float32
	StepTimes  []time.Duration
}

func (m *DiT) batchSize(req *SampleRequest) int {
	if m.Cfg.Cond == CondText {
		return len(req.Prompts)
	}
	return len(req.Labels)
}

// schedule builds the request's discretisation: flow-matching Euler from t = 1 to 0, or DDIM over
// 1000 DDPM steps (linear β 1e-4…0.02) evenly spaced, for ε-prediction checkpoints.
func (m *DiT) schedule(steps int, shift float64) Schedule {
	s := Schedule{Steps: steps, Times: make([]float64, steps), Deltas: make([]float64, steps)}
	for i := range steps {
		if m.Cfg.Prediction == PredictFlow {
			t, next := shiftTime(1-float64(i)/float64(steps), shift), shiftTime(1-float64(i+1)/float64(steps), shift)
			s.Times[i] = 1000 * t
			s.Deltas[i] = next - t
		} else {
			stride := 1000 / steps
			s.Times[i] = float64((steps - 1 - i) * stride)
			s.Deltas[i] = -float64(stride)
		}
	}
	return s
}

// shiftTime warps t ∈ [0, 1] by the shift s (0 or 1: unchanged); it keeps 0 and 1 fixed.
func shiftTime(t, s float64) float64 {
	if s == 0 || s == 1 {
		return t
	}
	return s * t / (1 + (s-1)*t)
}

// ddpmAlphaBar is ᾱ at integer DDPM timestep t (linear betas, 1000 steps); t < 0 gives 1.
func ddpmAlphaBar(t int) float64 {
	if t < 0 {
		return 1
	}
	ab := 1.0
	for i := 0; i <= t; i++ {
		beta := 1e-4 + (0.02-1e-4)*float64(i)/999
		ab *= 1 - beta
	}
	return ab
}

func (m *DiT) validate(req *SampleRequest) error {
	if req.Steps == 0 {
		req.Steps = 50
	}
	if err := m.Cfg.ValidateSteps(req.Steps); err != nil {
		return err
	}
	switch {
	case m.batchSize(req) == 0:
		return cachet.Errorf(cachet.CodeInvalidArgument, "nothing to generate: give at least one prompt")
	case req.Noise != nil && len(req.Noise) != m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize:
		return cachet.Errorf(cachet.CodeInvalidArgument, "noise has %d values; %d images need %d", len(req.Noise), m.batchSize(req), m.batchSize(req)*m.Cfg.Channels*m.Cfg.ImageSize*m.Cfg.ImageSize)
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
	if err := req.GuidanceInterval.Validate("guidance interval"); err != nil {
		return err
	}
	if err := req.StochasticInterval.Validate("stochastic interval"); err != nil {
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

// stepNoise is the fresh noise of a stochastic step: each image's own stream, keyed by seed, image and step.
func (m *DiT) stepNoise(seed int64, step, n int) []float32 {
	return m.imageNoise(n, func(i int) *rand.PCG {
		return rand.NewPCG(uint64(seed)^0x9e3779b97f4a7c15, uint64(step+1)<<32|uint64(i))
	})
}

// initialNoise draws each image's starting noise from its own seeded stream, in Go, so image i is the same
// whatever the batch size and however libtorch's global generator was used before.
func (m *DiT) initialNoise(seed int64, n int) []float32 {
	return m.imageNoise(n, func(i int) *rand.PCG { return rand.NewPCG(uint64(seed), uint64(i)) })
}

// imageNoise fills n images with standard normal values, image i from its own stream(i).
func (m *DiT) imageNoise(n int, stream func(i int) *rand.PCG) []float32 {
	per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
	out := make([]float32, n*per)
	for i := range n {
		rng := rand.New(stream(i))
		for k := range per {
			out[i*per+k] = float32(rng.NormFloat64())
		}
	}
	return out
}

// Sample runs the sampler. It must run on the model's worker (a goroutine locked to its OS thread, with
// gradients off); see Worker. ctx is checked between steps.
func (m *DiT) Sample(ctx context.Context, req SampleRequest) (*SampleResult, error) {
	if err := m.validate(&req); err != nil {
		return nil, err
	}
	n := m.batchSize(&req)
	guided := req.Guidance > 1 // classifier-free; autoguidance is guideMods
	sched := m.schedule(req.Steps, req.TimeShift)

	var keep Scope // lives for the whole request: condition vectors, modulations, the current sample
	defer keep.Drop()
	o := newOps(&keep)
	mods := m.stepModulations(o, &req, sched, guided) // the unconditional rows ride in the same batch
	var guideMods, negativeMods, perturbedMods []*modulation
	if req.Guide != nil && req.GuideScale > 1 {
		guideMods = req.Guide.stepModulations(o, &req, sched, false)
	}
	if req.NegativeGuidance > 0 {
		negativeMods = m.stepModulations(o, &SampleRequest{Prompts: req.NegativePrompts, Steps: req.Steps}, sched, false)
	}
	if req.PerturbedGuidance > 0 {
		perturbedMods = m.stepModulations(o, &req, sched, false)
	}
	noise := req.Noise
	if noise == nil {
		noise = m.initialNoise(req.Seed, n)
	}
	x := o.keep(FromFloat32s(noise, []int64{int64(n), int64(m.Cfg.Channels), int64(m.Cfg.ImageSize), int64(m.Cfg.ImageSize)}, m.Device))
	if o.err != nil {
		return nil, o.err
	}
	if req.Cache != nil {
		if err := req.Cache.Begin(sched); err != nil {
			return nil, err
		}
		defer req.Cache.End()
	}

	res := &SampleResult{N: n, C: m.Cfg.Channels, H: m.Cfg.ImageSize, W: m.Cfg.ImageSize, StepTimes: make([]time.Duration, 0, req.Steps)}
	for i := range req.Steps {
		if err := ctx.Err(); err != nil {
			return nil, cachet.Wrap(cachet.CodeCanceled, err, "generation canceled at step %d of %d", i, req.Steps)
		}
		start := time.Now()
		b := branches{mod: mods[i], guided: guided}
		if guideMods != nil {
			b.guide = guideMods[i]
		}
		if negativeMods != nil {
			b.negative = negativeMods[i]
		}
		if perturbedMods != nil {
			b.perturbed = perturbedMods[i]
		}
		next, err := m.step(&req, sched, i, x, b, n)
		if err != nil {
			return nil, err
		}
		keep.Release(x).Drop()
		x = keep.Keep(next)
		res.StepTimes = append(res.StepTimes, time.Since(start))
	}
	px, err := Float32s(x)
	if err != nil {
		return nil, err
	}
	res.Pixels = px
	return res, nil
}

// branches are one step's modulations: the model's (with the unconditional rows after the conditional
// ones when guided), the autoguidance model's, the negative prompts' and the perturbed pass's (the
// conditional rows alone; nil when unused).
type branches struct {
	mod, guide, negative, perturbed *modulation
	guided                          bool
}

// step advances x by one sampler step; every intermediate is dropped before it returns.
func (m *DiT) step(req *SampleRequest, sched Schedule, i int, x *ts.Tensor, b branches, n int) (*ts.Tensor, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	eval := func(h *Hooks) (*Feature, error) {
		h, err := withInjection(h, req.Inject, n)
		if err != nil {
			return nil, err
		}
		in := x
		if b.guided {
			in = o.cat(0, x, x)
		}
		out := m.velocity(o, in, b.mod, h)
		if b.guided || b.guide != nil || b.negative != nil || b.perturbed != nil { // rows [0, n) are conditional, [n, 2n) unconditional
			g := guidanceInputs{c: out}
			if b.guided {
				g.c, g.u = o.narrow(out, 0, 0, int64(n)), o.narrow(out, 0, int64(n), int64(n))
			}
			out = g.c
			if req.GuidanceInterval.Contains(sched.Times[i] / 1000) {
				if b.guide != nil {
					g.weak = req.Guide.velocity(o, x, b.guide, nil)
				}
				if b.negative != nil {
					g.negative = m.velocity(o, x, b.negative, nil)
				}
				if b.perturbed != nil {
					g.perturbed = m.velocity(o, x, b.perturbed, &Hooks{IdentityAttention: req.PerturbedBlocks})
				}
				out = o.guide(req, x, g, sched.Times[i]/1000)
			}
		}
		if o.err != nil {
			return nil, o.err
		}
		return &Feature{t: out}, nil
	}
	var out *Feature
	var err error
	if req.Cache != nil {
		out, err = req.Cache.Eval(i, eval)
		if err == nil {
			s.Keep(out.t)
		}
	} else {
		out, err = eval(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("model: step %d: %w", i, err)
	}
	var next *ts.Tensor
	if m.Cfg.Prediction == PredictFlow {
		t := sched.Times[i] / 1000
		tn := t + sched.Deltas[i]
		if i < req.ZeroInitSteps {
			next = o.scale(x, 1) // the step's velocity is zeroed (still computed, so step caches see every step)
		} else if req.Stochasticity > 0 && tn > 1e-9 && req.StochasticInterval.Contains(t) {
			// Re-noise: keep the predicted clean image, and replace a share η of the predicted noise by fresh
			// noise (η = 0 is the Euler step exactly).
			eta := req.Stochasticity
			x0 := o.sub(x, o.scale(out.t, t))
			eps := o.add(x, o.scale(out.t, 1-t))
			z := o.keep(FromFloat32s(m.stepNoise(req.Seed, i, n), o.size(x), m.Device))
			mixed := o.add(o.scale(eps, math.Sqrt(1-eta*eta)), o.scale(z, eta))
			next = o.add(o.scale(x0, 1-tn), o.scale(mixed, tn))
		} else {
			next = o.add(x, o.scale(out.t, sched.Deltas[i]))
		}
	} else {
		t := int(sched.Times[i])
		ab, abPrev := ddpmAlphaBar(t), ddpmAlphaBar(t+int(sched.Deltas[i]))
		x0 := o.scale(o.sub(x, o.scale(out.t, math.Sqrt(1-ab))), 1/math.Sqrt(ab))
		next = o.add(o.scale(x0, math.Sqrt(abPrev)), o.scale(out.t, math.Sqrt(1-abPrev)))
	}
	if o.err != nil {
		return nil, o.err
	}
	return s.Release(next), nil
}

// conditions encodes the request's condition vectors [B, D]; with guidance the unconditional rows follow
// the conditional ones (the null condition, or the same prompts when the injection keeps them).
func (m *DiT) conditions(o *ops, req *SampleRequest, guided bool) *ts.Tensor {
	n := m.batchSize(req)
	rows := n
	if guided {
		rows = 2 * n
	}
	keepPrompt := req.Inject != nil && req.Inject.KeepPrompt
	if m.Cfg.Cond == CondText {
		prompts, null := make([]string, rows), make([]bool, rows)
		copy(prompts, req.Prompts)
		for k := n; k < rows; k++ {
			if keepPrompt {
				prompts[k] = req.Prompts[k-n]
			} else {
				null[k] = true
			}
		}
		return m.text.encode(o, prompts, null, m.Device)
	}
	labels := make([]int, rows)
	for k := range labels {
		if k < n {
			labels[k] = req.Labels[k]
		} else if keepPrompt {
			labels[k] = req.Labels[k-n]
		} else {
			labels[k] = m.Cfg.NumClasses // the null class
		}
	}
	return m.labelEmbed(o, labels)
}

// labelEmbed looks up label rows (NumClasses is the null class).
func (m *DiT) labelEmbed(o *ops, labels []int) *ts.Tensor {
	ids := make([]int64, len(labels))
	for i, l := range labels {
		ids[i] = int64(l)
	}
	idx := o.keep(ts.NewTensorFromData(ids, []int64{int64(len(ids))}))
	if idx != nil && m.Device != gotch.CPU {
		idx = o.keep(idx.To(m.Device, false))
	}
	if !o.ok(idx) {
		return nil
	}
	return o.keep(ts.Embedding(m.labels, idx, -1, false, false))
}

// rescaleGuided returns φ·g·σ(c)/σ(g) + (1−φ)·g, σ per image over its pixels.
func (o *ops) rescaleGuided(g, c *ts.Tensor, phi float64) *ts.Tensor {
	ratio := o.div(o.imageStd(c), o.clampMin(o.imageStd(g), 1e-6))
	return o.mul(g, o.addScalar(o.scale(ratio, phi), 1-phi))
}

// projectionScale is each image's s = ⟨a, b⟩ / ‖b‖², shaped [N, 1, 1, 1] to broadcast over a [N, C, H, W]
// tensor: the multiple of b closest to a.
func (o *ops) projectionScale(a, b *ts.Tensor) *ts.Tensor {
	size := o.size(a)
	if size == nil || !o.ok(b) {
		return nil
	}
	af, bf := o.reshape(a, size[0], -1), o.reshape(b, size[0], -1)
	s := o.div(o.sumDim(o.mul(af, bf), 1), o.clampMin(o.sumDim(o.mul(bf, bf), 1), 1e-12))
	return o.reshape(s, size[0], 1, 1, 1)
}

// projectGuidance removes share of g's component along each image's clean-image prediction x0: with the
// guided clean image x0_c + (w−1)·Δ and Δ = −t·g, projecting Δ on x0 is projecting g on it.
func (o *ops) projectGuidance(g, x0 *ts.Tensor, share float64) *ts.Tensor {
	return o.sub(g, o.mul(x0, o.scale(o.projectionScale(g, x0), share)))
}

// renormClean blends the guided velocity's clean image x − t·g with itself moved to the per-image mean
// and standard deviation of the conditional velocity's clean image x − t·c, by φ, and returns the
// velocity of the result.
func (o *ops) renormClean(x, g, c *ts.Tensor, t, phi float64) *ts.Tensor {
	x0g, x0c := o.sub(x, o.scale(g, t)), o.sub(x, o.scale(c, t))
	mg, mc := o.imageMean(x0g), o.imageMean(x0c)
	ratio := o.div(o.imageStd(x0c), o.clampMin(o.imageStd(x0g), 1e-6))
	renormed := o.add(o.mul(o.sub(x0g, mg), ratio), mc)
	x0 := o.add(o.scale(renormed, phi), o.scale(x0g, 1-phi))
	return o.scale(o.sub(x, x0), 1/t)
}

// imageMean is each image's mean over C, H, W, shaped [N, 1, 1, 1] to broadcast.
func (o *ops) imageMean(x *ts.Tensor) *ts.Tensor {
	size := o.size(x)
	if size == nil {
		return nil
	}
	return o.reshape(o.meanDim(o.reshape(x, size[0], -1), 1, true), size[0], 1, 1, 1)
}

// imageStd is each image's standard deviation over C, H, W, shaped [N, 1, 1, 1] to broadcast.
func (o *ops) imageStd(x *ts.Tensor) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	size, err := x.Size()
	if err != nil {
		o.err = fmt.Errorf("model: image std: %w", err)
		return nil
	}
	flat := o.reshape(x, size[0], -1)
	d := o.sub(flat, o.meanDim(flat, 1, true))
	return o.reshape(o.sqrt(o.meanDim(o.mul(d, d), 1, true)), size[0], 1, 1, 1)
}

// Interval is a range (Lo, Hi] of sampler time t ∈ [0, 1] (1 = pure noise); the zero value means all of it.
type Interval struct{ Lo, Hi float64 }

// Validate refuses bounds outside [0, 1] or Lo ≥ Hi (other than the zero value); what names the interval
// in the error.
func (iv Interval) Validate(what string) error {
	if iv == (Interval{}) {
		return nil
	}
	if math.IsNaN(iv.Lo) || math.IsNaN(iv.Hi) || iv.Lo < 0 || iv.Hi > 1 || iv.Lo >= iv.Hi {
		return cachet.Errorf(cachet.CodeInvalidArgument, "%s must be 0 ≤ lo < hi ≤ 1 (got %v, %v)", what, iv.Lo, iv.Hi)
	}
	return nil
}

// Contains reports whether t lies in (Lo, Hi]; the zero value contains every t.
func (iv Interval) Contains(t float64) bool {
	return iv == (Interval{}) || (t > iv.Lo && t <= iv.Hi)
}
