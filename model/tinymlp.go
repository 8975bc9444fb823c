package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Linear is y = x·Wᵀ + b with PyTorch's default initialisation (gotch's own default is N(0,1)).
type Linear struct {
	Weight, Bias *ts.Tensor
}

// NewLinear adds a Linear's parameters under p ("weight" [out,in], "bias" [out]).
func NewLinear(p *nn.Path, in, out int64) (*Linear, error) {
	bound := 1 / math.Sqrt(float64(in))
	w, err := p.NewVar("weight", []int64{out, in}, nn.NewUniformInit(-bound, bound))
	if err != nil {
		return nil, fmt.Errorf("linear %s weight: %w", p.Paths(), err)
	}
	b, err := p.NewVar("bias", []int64{out}, nn.NewUniformInit(-bound, bound))
	if err != nil {
		return nil, fmt.Errorf("linear %s bias: %w", p.Paths(), err)
	}
	return &Linear{Weight: w, Bias: b}, nil
}

// Forward returns a new tensor owned by the caller.
func (l *Linear) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	return ts.Linear(x, l.Weight, l.Bias)
}

// TinyMLP is a two-layer GELU MLP: the smallest real module, used to prove the libtorch build end to end
// (forward, backward, optimiser, save/load) in CI.
type TinyMLP struct {
	VS       *nn.VarStore
	fc1, fc2 *Linear
}

// NewTinyMLP builds the MLP on device with fresh parameters.
func NewTinyMLP(device gotch.Device, in, hidden, out int64) (*TinyMLP, error) {
	vs := nn.NewVarStore(device)
	root := vs.Root()
	fc1, err := NewLinear(root.Sub("fc1"), in, hidden)
	if err != nil {
		return nil, err
	}
	fc2, err := NewLinear(root.Sub("fc2"), hidden, out)
	if err != nil {
		return nil, err
	}
	return &TinyMLP{VS: vs, fc1: fc1, fc2: fc2}, nil
}

// Forward returns a new tensor owned by the caller; intermediates are dropped here.
func (m *TinyMLP) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	var s Scope
	defer s.Drop()
	h, err := s.Track(m.fc1.Forward(x))
	if err != nil {
		return nil, err
	}
	h, err = s.Track(h.Gelu("none", false))
	if err != nil {
		return nil, err
	}
	return m.fc2.Forward(h)
}
