package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TrainBatch is one flow-matching batch. The caller draws the randomness (t, noise, condition dropout) so
// that training is reproducible from its own seeds.
type TrainBatch struct {
	Images  []float32 // [B, C, H, W] in model units (about −1…1)
	Prompts []string  // text models; ignored where Null[i]
	Labels  []int     // label models
	Null    []bool    // condition dropout: these rows train the null condition
	T       []float64 // per-sample t in [0, 1]
	Noise   []float32 // ε, the same size as Images
	// Weights, when set, weigh each row's mean squared error in the batch loss (normalised by their sum);
	// nil weighs rows equally.
	Weights []float64
}

// Trainer fits a DiT by flow matching (x_t = (1−t)·x0 + t·ε, target v = ε − x0, MSE) with AdamW and
// keeps an exponential moving average of the weights for sampling.
type Trainer struct {
	fit
	Model *DiT
	EMA   *DiT // nil when EMA is off
}

// TrainerConfig sets the optimiser.
type TrainerConfig struct {
	LR, Beta1, Beta2, WeightDecay float64
	EMADecay                      float64 // 0 disables EMA
	GradClip                      float64 // max global grad norm; 0 disables
}

// NewTrainer prepares AdamW over m's parameters (and an EMA copy when cfg.EMADecay > 0).
func NewTrainer(m *DiT, cfg TrainerConfig) (*Trainer, error) {
	if err := setTrainable(m.VS, true); err != nil { // Load leaves weights frozen; training them further needs grads
		return nil, err
	}
	ema, f, err := fitWithEMA(m.VS, cfg, func() (*DiT, *nn.VarStore, error) {
		ema, err := New(m.Cfg, m.Device)
		if err != nil {
			return nil, nil, err
		}
		if err := setTrainable(ema.VS, false); err != nil {
			ema.Close()
			return nil, nil, err
		}
		return ema, ema.VS, nil
	})
	if err != nil {
		return nil, err
	}
	return &Trainer{fit: f, Model: m, EMA: ema}, nil
}

// Close frees the optimizer state and the EMA copy (not the model).
func (t *Trainer) Close() {
	t.close()
	if t.EMA != nil {
		t.EMA.Close()
	}
}

// Step runs one forward/backward/AdamW step (and the EMA update) and returns the batch loss. It must run
// on a worker with gradients on.
func (t *Trainer) Step(b TrainBatch, clip float64) (float64, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	loss := t.Model.flowLoss(o, b)
	if o.err != nil {
		return 0, o.err
	}
	return t.step(loss, clip)
}

// emaUpdate sets ema ← d·ema + (1−d)·p for every parameter. The sources are detached, so nothing is
// recorded for autograd (gotch's grad-mode toggles are not used: its VarStore.Copy leaves grad mode off).
func emaUpdate(ema, src *nn.VarStore, d float64) error {
	return eachParamPair(ema, src, func(name string, e, p *ts.Tensor) error {
		w := ts.FloatScalar(1 - d)
		defer w.Drop()
		return e.Lerp_(p, w)
	})
}

// copyParams sets dst's parameters to src's values (dst frozen).
func copyParams(dst, src *nn.VarStore) error {
	return eachParamPair(dst, src, func(_ string, e, p *ts.Tensor) error { return copyTensor(e, p) })
}

// copyTensor sets dst (frozen, or a view of a frozen tensor) to src's values in place; the shapes match.
func copyTensor(dst, src *ts.Tensor) error {
	if err := dst.Zero_(); err != nil {
		return err
	}
	return dst.Add_(src)
}

// eachParamPair calls fn with each of dst's parameters and a detached view of src's same-named one.
func eachParamPair(dst, src *nn.VarStore, fn func(name string, d, s *ts.Tensor) error) error {
	srcVars := src.Variables()
	for name, d := range dst.Variables() {
		s, ok := srcVars[name]
		if !ok {
			return fmt.Errorf("model: %s missing from the source weights", name)
		}
		det, err := s.Detach(false)
		if err != nil {
			return err
		}
		err = fn(name, &d, det)
		det.Drop()
		if err != nil {
			return fmt.Errorf("model: %s: %w", name, err)
		}
	}
	return nil
}

// flowLoss is mean((model(x_t, t, y) − (ε − x0))²) over the batch.
func (m *DiT) flowLoss(o *ops, b TrainBatch) *ts.Tensor { return m.flowLossWith(o, b, nil) }

// flowLossWith is flowLoss through the given hooks (adapter training).
func (m *DiT) flowLossWith(o *ops, b TrainBatch, h *Hooks) *ts.Tensor {
	n := len(b.T)
	shape := []int64{int64(n), int64(m.Cfg.Channels), int64(m.Cfg.ImageSize), int64(m.Cfg.ImageSize)}
	x0 := o.keep(FromFloat32s(b.Images, shape, m.Device))
	eps := o.keep(FromFloat32s(b.Noise, shape, m.Device))
	tcol := make([]float32, n)
	times := make([]float64, n)
	for i, t := range b.T {
		tcol[i] = float32(t)
		times[i] = 1000 * t
	}
	tt := o.keep(FromFloat32s(tcol, []int64{int64(n), 1, 1, 1}, m.Device))
	xt := o.add(o.mul(x0, o.addScalar(o.scale(tt, -1), 1)), o.mul(eps, tt))
	target := o.sub(eps, x0)
	req := SampleRequest{Prompts: b.Prompts, Labels: b.Labels}
	y := m.trainConditions(o, &req, b.Null)
	mod := m.modulate(o, m.conditionVector(o, times, y))
	pred := m.forward(o, xt, mod, h)
	if m.Cfg.LearnSigma {
		pred = o.narrow(pred, 1, 0, int64(m.Cfg.Channels))
	}
	if !o.ok(pred, target) {
		return nil
	}
	if b.Weights == nil {
		return o.keep(pred.MseLoss(target, 1, false)) // reduction 1 = mean
	}
	return weightedMSE(o, pred, target, b.Weights, m.Device)
}

// weightedMSE is Σ_i w_i·mean((pred_i − target_i)²) / Σ_i w_i over the rows of pred and target [B, …].
func weightedMSE(o *ops, pred, target *ts.Tensor, weights []float64, device Device) *ts.Tensor {
	var total float64
	w := make([]float32, len(weights))
	for i, x := range weights {
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			o.err = fmt.Errorf("model: loss weight %d is %v, want a finite weight ≥ 0", i, x)
			return nil
		}
		total += x
		w[i] = float32(x)
	}
	if total <= 0 {
		o.err = fmt.Errorf("model: loss weights sum to %v", total)
		return nil
	}
	sz := o.size(pred)
	if sz == nil {
		return nil
	}
	if len(weights) != int(sz[0]) {
		o.err = fmt.Errorf("model: %d loss weights for %d rows", len(weights), sz[0])
		return nil
	}
	d := o.sub(pred, target)
	perRow := o.meanDim(o.reshape(o.mul(d, d), sz[0], -1), 1, false) // [B]
	wt := o.keep(FromFloat32s(w, []int64{sz[0]}, device))
	return o.scale(o.sumDim(o.mul(perRow, wt), 0), 1/total)
}

// trainConditions encodes condition vectors with per-row dropout to the null condition.
func (m *DiT) trainConditions(o *ops, req *SampleRequest, null []bool) *ts.Tensor {
	if m.Cfg.Cond == CondText {
		return m.text.encode(o, req.Prompts, null, m.Device)
	}
	labels := make([]int, len(req.Labels))
	for i, l := range req.Labels {
		labels[i] = l
		if null != nil && null[i] {
			labels[i] = m.Cfg.NumClasses
		}
	}
	return m.labelEmbed(o, labels)
}

// clipGradNorm scales all gradients so that their global L2 norm is at most maxNorm (gotch's own
// ClipGradNorm deadlocks on its VarStore lock in v0.9.1).
func clipGradNorm(vs *nn.VarStore, maxNorm float64) error {
	var grads []*ts.Tensor
	defer func() {
		for _, g := range grads {
			g.Drop()
		}
	}()
	total := 0.0
	for _, v := range vs.TrainableVariables() {
		g, err := v.Grad(false)
		if err != nil {
			return fmt.Errorf("model: reading a gradient: %w", err)
		}
		if ok, err := g.Defined(); err != nil || !ok {
			g.Drop()
			continue // a parameter the loss does not reach has no gradient
		}
		grads = append(grads, g)
		sq, err := g.Square(false)
		if err != nil {
			return err
		}
		sum, err := sq.Sum(gotch.Double, true)
		if err != nil {
			return err
		}
		val, err := sum.Float64Value([]int64{})
		sum.Drop()
		if err != nil {
			return err
		}
		total += val
	}
	norm := math.Sqrt(total)
	if norm <= maxNorm || norm == 0 {
		return nil
	}
	coef := ts.FloatScalar(maxNorm / (norm + 1e-6))
	defer coef.Drop()
	for _, g := range grads {
		if err := g.MulScalar_(coef); err != nil {
			return err
		}
	}
	return nil
}

// FlowLoss evaluates m's flow-matching loss on b without tracking gradients (validation).
func FlowLoss(m *DiT, b TrainBatch) (float64, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	prev, err := setGradEnabled(false)
	if err != nil {
		return 0, err
	}
	defer setGradEnabled(prev)
	loss := m.flowLoss(o, b)
	if o.err != nil {
		return 0, o.err
	}
	return loss.Float64Value([]int64{})
}
