package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Feature algebra for step-cache policies: every result is a new Feature the caller owns.

// NewFeature makes a Feature from values (tests and scripted trajectories).
func NewFeature(vals []float32, shape []int64, device Device) (*Feature, error) {
	t, err := FromFloat32s(vals, shape, device)
	if err != nil {
		return nil, err
	}
	return &Feature{t: t}, nil
}

// Combine returns Σ coeffs[i]·fs[i] (all the same shape).
func Combine(coeffs []float64, fs []*Feature) (*Feature, error) {
	if len(coeffs) != len(fs) || len(fs) == 0 {
		return nil, fmt.Errorf("model: Combine needs one coefficient per feature (got %d and %d)", len(coeffs), len(fs))
	}
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	acc := o.scale(fs[0].t, coeffs[0])
	for i := 1; i < len(fs); i++ {
		acc = o.add(acc, o.scale(fs[i].t, coeffs[i]))
	}
	if o.err != nil {
		return nil, o.err
	}
	return &Feature{t: s.Release(acc)}, nil
}

// CombineChannels returns Σ_i weights[i] ⊙ fs[i], each weights[i] one value per channel (the last
// dimension), broadcast over the others: a per-channel linear forecast (HyCa's hybrid solvers).
func CombineChannels(weights [][]float32, fs []*Feature) (*Feature, error) {
	if len(weights) != len(fs) || len(fs) == 0 {
		return nil, fmt.Errorf("model: CombineChannels needs one weight vector per feature (got %d and %d)", len(weights), len(fs))
	}
	dev, err := fs[0].t.Device()
	if err != nil {
		return nil, err
	}
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	var acc *ts.Tensor
	for i, f := range fs {
		w := o.keep(FromFloat32s(weights[i], []int64{int64(len(weights[i]))}, dev))
		term := o.mul(f.t, w)
		if acc == nil {
			acc = term
		} else {
			acc = o.add(acc, term)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return &Feature{t: s.Release(acc)}, nil
}

// Affine returns scale·f + shift.
func (f *Feature) Affine(scale, shift float64) (*Feature, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	out := o.scale(f.t, scale)
	if shift != 0 {
		out = o.keep(cAddScalar(out, shift))
	}
	if o.err != nil {
		return nil, o.err
	}
	return &Feature{t: s.Release(out)}, nil
}

// Add returns f + g.
func (f *Feature) Add(g *Feature) (*Feature, error) {
	return Combine([]float64{1, 1}, []*Feature{f, g})
}

// Sub returns f − g.
func (f *Feature) Sub(g *Feature) (*Feature, error) {
	return Combine([]float64{1, -1}, []*Feature{f, g})
}

// MeanAbs is mean(|f|).
func (f *Feature) MeanAbs() (float64, error) {
	a, err := cAbs(f.t)
	if err != nil {
		return 0, err
	}
	defer a.Drop()
	m, err := cMean(a, gotch.Double)
	if err != nil {
		return 0, err
	}
	defer m.Drop()
	return m.Float64Value([]int64{})
}

// RelL1 is mean(|f − ref|) / mean(|ref|), the change indicator of FBCache, TeaCache and BWCache.
func (f *Feature) RelL1(ref *Feature) (float64, error) {
	d, err := f.Sub(ref)
	if err != nil {
		return 0, err
	}
	defer d.Drop()
	num, err := d.MeanAbs()
	if err != nil {
		return 0, err
	}
	den, err := ref.MeanAbs()
	if err != nil {
		return 0, err
	}
	if den == 0 {
		return num, nil
	}
	return num / den, nil
}

// Bytes is the feature's size in memory (for policies' extra-memory reports).
func (f *Feature) Bytes() int64 {
	shape, err := f.t.Size()
	if err != nil {
		return 0
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n * int64(f.t.DType().Size())
}

// Norm is the L2 norm of the whole feature.
func (f *Feature) Norm() (float64, error) {
	n, err := cNorm(f.t)
	if err != nil {
		return 0, err
	}
	defer n.Drop()
	return n.Float64Value([]int64{})
}

// Rows returns rows [from, from+n) of f along its first dimension (sharing storage).
func (f *Feature) Rows(from, n int) (*Feature, error) {
	t, err := cNarrow(f.t, 0, int64(from), int64(n))
	if err != nil {
		return nil, err
	}
	return &Feature{t: t}, nil
}

// ConcatRows stacks features along their first dimension.
func ConcatRows(fs ...*Feature) (*Feature, error) {
	tensors := make([]*ts.Tensor, len(fs))
	for i, f := range fs {
		tensors[i] = f.t
	}
	t, err := cCat(tensors, 0)
	if err != nil {
		return nil, err
	}
	return &Feature{t: t}, nil
}
