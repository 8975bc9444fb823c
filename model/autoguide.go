package model

import (
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

// validateGuide checks that an autoguidance model can guide m: the same images, prediction and
// conditioning, on the same device, and no subject injection (the guide has no adapters).
func (m *DiT) validateGuide(req *SampleRequest) error {
	g := req.Guide
	if g == nil {
		return nil
	}
	switch {
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
