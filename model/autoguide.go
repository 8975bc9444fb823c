package model

import (
	"math"

	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
)

// stepModulations precomputes every step's adaLN modulation for the request's conditions; doubled adds
// the unconditional rows after the conditional ones (classifier-free guidance in one batch).
func (m *DiT) stepModulations(o *ops, req *SampleRequest, sched Schedule, doubled bool) []*modulation {
	y := m.conditions(o, req, doubled)
	rows := m.batchSize(req)
	if doubled {
		rows *= 2
	}
	mods := make([]*modulation, req.Steps)
	for i := range req.Steps {
		times := make([]float64, rows)
		for k := range times {
			times[k] = sched.Times[i]
		}
		mods[i] = m.modulate(o, m.conditionVector(o, times, y))
	}
	return mods
}

// velocity is the model's prediction with the learned-variance channels (if any) dropped.
func (m *DiT) velocity(o *ops, x *ts.Tensor, mod *modulation, h *Hooks) *ts.Tensor {
	out := m.forward(o, x, mod, h)
	if m.Cfg.LearnSigma {
		out = o.narrow(out, 1, 0, int64(m.Cfg.Channels))
	}
	return out
}

// guidanceInputs are a step's predictions: the conditional c, the unconditional u (nil without
// classifier-free guidance), the guide model's weak (nil without autoguidance), the negative prompts'
// (nil without them) and the perturbed-attention pass's (nil without perturbed-attention guidance).
type guidanceInputs struct{ c, u, weak, negative, perturbed *ts.Tensor }

// guide combines a step's predictions at time t (1 = noise).
func (o *ops) guide(req *SampleRequest, x *ts.Tensor, g guidanceInputs, t float64) *ts.Tensor {
	c, u := g.c, g.u
	if req.OptimizedScale && u != nil { // CFG-Zero*: the unconditional scaled to its projection on c
		u = o.mul(u, o.projectionScale(c, u))
	}
	var out *ts.Tensor
	if g.weak == nil && g.negative == nil && g.perturbed == nil && req.GuidanceProjection == 0 {
		out = o.add(u, o.scale(o.sub(c, u), req.Guidance)) // plain classifier-free guidance
	} else {
		var term *ts.Tensor // what guidance adds to c
		addTerm := func(more *ts.Tensor) {
			if term == nil {
				term = more
			} else {
				term = o.add(term, more)
			}
		}
		if u != nil {
			addTerm(o.scale(o.sub(c, u), req.Guidance-1))
		}
		if g.weak != nil {
			addTerm(o.scale(o.sub(c, g.weak), req.GuideScale-1))
		}
		if g.negative != nil {
			addTerm(o.scale(o.sub(c, g.negative), req.NegativeGuidance))
		}
		if g.perturbed != nil {
			addTerm(o.scale(o.sub(c, g.perturbed), req.PerturbedGuidance))
		}
		if req.GuidanceProjection > 0 { // the clean-image prediction is x − t·c
			term = o.projectGuidance(term, o.sub(x, o.scale(c, t)), req.GuidanceProjection)
		}
		out = o.add(c, term)
	}
	if req.GuidanceRescale > 0 {
		out = o.rescaleGuided(out, c, req.GuidanceRescale)
	}
	if req.CleanRenorm > 0 && t > 0 {
		out = o.renormClean(x, out, c, t, req.CleanRenorm)
	}
	return out
}

// validateGuide checks that an autoguidance model can guide m: the same images, prediction and
// conditioning, on the same device, and no subject injection (the guide has no adapters).
func (m *DiT) validateGuide(req *SampleRequest) error {
	g := req.Guide
	switch {
	case math.IsNaN(req.GuideScale) || req.GuideScale < 0 || req.GuideScale > 50:
		return cachet.Errorf(cachet.CodeInvalidArgument, "autoguidance scale must be between 0 and 50 (got %v)", req.GuideScale)
	case g == nil && req.GuideScale > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "autoguidance needs a guide model")
	case g == nil:
		return nil
	case g == m:
		return cachet.Errorf(cachet.CodeInvalidArgument, "the autoguidance model must be a weaker model, not the sampler's own")
	case g.Cfg.ImageSize != m.Cfg.ImageSize || g.Cfg.Channels != m.Cfg.Channels:
		return cachet.Errorf(cachet.CodeInvalidArgument, "the autoguidance model draws %d×%d×%d images; this model draws %d×%d×%d", g.Cfg.ImageSize, g.Cfg.ImageSize, g.Cfg.Channels, m.Cfg.ImageSize, m.Cfg.ImageSize, m.Cfg.Channels)
	case g.Cfg.Prediction != m.Cfg.Prediction || g.Cfg.Cond != m.Cfg.Cond || g.Cfg.NumClasses != m.Cfg.NumClasses:
		return cachet.Errorf(cachet.CodeInvalidArgument, "the autoguidance model (%s) must predict and be conditioned as this model (%s) is", g.Cfg, m.Cfg)
	case g.Device != m.Device:
		return cachet.Errorf(cachet.CodeInvalidArgument, "the autoguidance model is on %v; this model is on %v", g.Device, m.Device)
	case req.Inject != nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "autoguidance does not combine with a subject's adapters")
	}
	return nil
}
