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
	// Euler says the output is a velocity the sampler integrates by Euler steps (flow models): scaling a
	// step's output by k scales that step's size by k.
	Euler bool
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
	s := Schedule{Steps: steps, Times: make([]float64, steps), Deltas: make([]float64, steps), Euler: m.Cfg.Prediction == PredictFlow}
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

// NoiseStream names one image's starting noise: image Index of a request seeded Seed.
type NoiseStream struct {
	Seed  int64
	Index int
}

// StreamNoise is the starting noise of images with these streams ([len, C, H, W]): the noise a request
// of their seed gives them, so requests batched together draw the images they would alone.
func (m *DiT) StreamNoise(streams []NoiseStream) []float32 {
	return m.imageNoise(len(streams), func(i int) *rand.PCG {
		return rand.NewPCG(uint64(streams[i].Seed), uint64(streams[i].Index))
	})
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
	switch {
	case noise != nil:
	case req.Streams != nil:
		if len(req.Streams) != n {
			return nil, fmt.Errorf("model: %d noise streams for %d images", len(req.Streams), n)
		}
		noise = m.StreamNoise(req.Streams)
	default:
		noise = m.initialNoise(req.Seed, n)
	}
	first := 0
	if req.Init != nil {
		first = req.Steps - ImageToImageSteps(req.Strength, req.Steps)
		t0 := sched.Times[first] / 1000
		noised := make([]float32, len(noise))
		for j, z := range noise {
			noised[j] = float32((1-t0)*float64(req.Init[j]) + t0*float64(z))
		}
		noise = noised
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
	for i := first; i < req.Steps; i++ {
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
		if req.OnStep != nil {
			req.OnStep()
		}
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
		var br *Branches
		if h != nil && h.Branches != nil && (b.guided || b.negative != nil) && h.Branches.Skip() {
			br = h.Branches
		}
		in, mod := x, b.mod
		switch {
		case b.guided && br != nil:
			mod = b.mod.rows(o, int64(n)) // the conditional rows alone
		case b.guided:
			in = o.cat(0, x, x)
		}
		out := m.velocity(o, in, mod, h)
		if b.guided || b.guide != nil || b.negative != nil || b.perturbed != nil { // rows [0, n) are conditional, [n, 2n) unconditional
			g := guidanceInputs{c: out}
			if b.guided && br != nil {
				g.u = o.branch(br, BranchUnconditional, out)
			} else if b.guided {
				g.c, g.u = o.narrow(out, 0, 0, int64(n)), o.narrow(out, 0, int64(n), int64(n))
				o.observe(h, BranchUnconditional, g.c, g.u)
			}
			out = g.c
			if req.GuidanceInterval.Contains(sched.Times[i] / 1000) {
				if b.guide != nil {
					g.weak = req.Guide.velocity(o, x, b.guide, nil)
				}
				if b.negative != nil && br != nil {
					g.negative = o.branch(br, BranchNegative, g.c)
				} else if b.negative != nil {
					g.negative = m.velocity(o, x, b.negative, nil)
					o.observe(h, BranchNegative, g.c, g.negative)
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

// branch is a reused guidance branch, supplied by the policy from the conditional prediction c.
func (o *ops) branch(br *Branches, kind Branch, c *ts.Tensor) *ts.Tensor {
	if !o.ok(c) {
		return nil
	}
	f, err := br.Supply(kind, &Feature{t: c})
	if err != nil {
		o.err = fmt.Errorf("model: supplying the %s branch: %w", kind, err)
		return nil
	}
	return o.s.Keep(f.t)
}

// observe shows a policy with branch hooks a computed guidance branch beside the conditional prediction.
func (o *ops) observe(h *Hooks, kind Branch, c, other *ts.Tensor) {
	if h == nil || h.Branches == nil || h.Branches.Observe == nil || !o.ok(c, other) {
		return
	}
	if err := h.Branches.Observe(kind, &Feature{t: c}, &Feature{t: other}); err != nil {
		o.err = fmt.Errorf("model: observing the %s branch: %w", kind, err)
	}
}

// rows is the modulation of the first n rows of its batch.
func (mod *modulation) rows(o *ops, n int64) *modulation {
	out := &modulation{blocks: make([][6]*ts.Tensor, len(mod.blocks))}
	for i, v := range mod.blocks {
		for k := range v {
			out.blocks[i][k] = o.narrow(v[k], 0, 0, n)
		}
	}
	out.final = [2]*ts.Tensor{o.narrow(mod.final[0], 0, 0, n), o.narrow(mod.final[1], 0, 0, n)}
	return out
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
		idx = o.keep(cTo(idx, m.Device))
	}
	if !o.ok(idx) {
		return nil
	}
	return o.keep(cEmbedding(m.labels, idx))
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
