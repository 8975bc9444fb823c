package model

import (
	"fmt"
	"math"
	"sort"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// AdamW is decoupled-weight-decay Adam (Loshchilov & Hutter) with its moment buffers held as ordinary
// tensors, so a checkpoint can save and restore them and a resumed run continues exactly. (gotch's
// optimizer keeps its state inside libtorch, out of reach.)
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Steps                          int64
	params                         []adamParam
}

type adamParam struct {
	name string
	p    *ts.Tensor // the parameter (shared with the VarStore)
	m, v *ts.Tensor // first and second moments
}

// NewAdamW prepares zeroed moments for every trainable parameter of vs, in name order.
func NewAdamW(vs *nn.VarStore, beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	a := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay}
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	byPtr := map[string]*ts.Tensor{}
	for _, t := range vs.TrainableVariables() {
		byPtr[fmt.Sprint(t.Ctensor())] = t
	}
	for _, n := range names {
		v := vars[n]
		p, ok := byPtr[fmt.Sprint(v.Ctensor())]
		if !ok {
			continue // frozen
		}
		m, err := p.ZerosLike(false)
		if err != nil {
			return nil, err
		}
		s, err := p.ZerosLike(false)
		if err != nil {
			m.Drop()
			return nil, err
		}
		if err := detachInPlace(m, s); err != nil {
			return nil, err
		}
		a.params = append(a.params, adamParam{name: n, p: p, m: m, v: s})
	}
	return a, nil
}

// detachInPlace makes sure moment buffers never record autograd history.
func detachInPlace(ts ...*ts.Tensor) error {
	for _, t := range ts {
		if err := t.Detach_(); err != nil {
			return err
		}
	}
	return nil
}

// ZeroGrad clears the parameters' gradients.
func (a *AdamW) ZeroGrad() error {
	for _, ap := range a.params {
		g, err := ap.p.Grad(false)
		if err != nil {
			return err
		}
		if ok, _ := g.Defined(); ok {
			err = g.Zero_()
		}
		g.Drop()
		if err != nil {
			return err
		}
	}
	return nil
}

// Step applies one update with learning rate lr:
// p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + ε), m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g².
func (a *AdamW) Step(lr float64) error {
	a.Steps++
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Steps))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Steps))
	for _, ap := range a.params {
		if err := a.update(ap, lr, bc1, bc2); err != nil {
			return fmt.Errorf("model: AdamW update of %s: %w", ap.name, err)
		}
	}
	return nil
}

func (a *AdamW) update(ap adamParam, lr, bc1, bc2 float64) error {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	g := o.keep(ap.p.Grad(false))
	if o.err != nil {
		return o.err
	}
	if ok, _ := g.Defined(); !ok {
		return nil // the loss does not reach this parameter
	}
	data := o.keep(ap.p.Detach(false)) // shares storage: updates land in the parameter
	if o.err != nil {
		return o.err
	}
	w1, w2 := ts.FloatScalar(1-a.Beta1), ts.FloatScalar(1-a.Beta2)
	defer w1.Drop()
	defer w2.Drop()
	if err := ap.m.Lerp_(g, w1); err != nil {
		return err
	}
	if err := ap.v.Lerp_(o.mul(g, g), w2); err != nil {
		return err
	}
	if a.WeightDecay > 0 {
		decay := ts.FloatScalar(1 - lr*a.WeightDecay)
		err := data.MulScalar_(decay)
		decay.Drop()
		if err != nil {
			return err
		}
	}
	denom := o.addScalar(o.sqrt(o.scale(ap.v, 1/bc2)), a.Eps)
	step := o.scale(o.div(ap.m, denom), lr/bc1)
	if o.err != nil {
		return o.err
	}
	return data.Sub_(step)
}

// State returns the moments as named tensors (m.<param>, v.<param>) for a checkpoint.
func (a *AdamW) state() map[string]*ts.Tensor {
	out := make(map[string]*ts.Tensor, 2*len(a.params))
	for _, ap := range a.params {
		out["m."+ap.name] = ap.m
		out["v."+ap.name] = ap.v
	}
	return out
}

// Close frees the moment buffers.
func (a *AdamW) Close() {
	for _, ap := range a.params {
		ap.m.Drop()
		ap.v.Drop()
	}
	a.params = nil
}
