package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// The layer ops call libtorch through gotch's C bindings directly rather than through its generated
// tensor methods: each of those allocates the result's out-pointer with C.malloc and never frees it, 32
// bytes an op — about 46 KiB a generate request and 12 KiB a classify request, growing a server's memory
// without bound (gotch issues #102, #115, #132). Here the out-pointer is a Go variable.

// cop runs one libtorch op that writes its result through out, and wraps the result.
func cop(name string, call func(out *lib.Ctensor)) (*ts.Tensor, error) {
	var out lib.Ctensor
	call(&out)
	if err := ts.TorchErr(); err != nil {
		return nil, fmt.Errorf("model: %s: %w", name, err)
	}
	return ts.New(out, name), nil
}

// ct is t's C tensor.
func ct(t *ts.Tensor) lib.Ctensor { return lib.Ctensor(t.Ctensor()) }

// withScalar runs call with a C scalar of v, freed after.
func withScalar(v float64, call func(lib.Cscalar)) {
	s := lib.AtsFloat(v)
	defer lib.AtsFree(s)
	call(s)
}

func cAdd(a, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("add", func(o *lib.Ctensor) { lib.AtgAdd(o, ct(a), ct(b)) })
}

func cSub(a, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("sub", func(o *lib.Ctensor) { lib.AtgSub(o, ct(a), ct(b)) })
}

func cMul(a, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("mul", func(o *lib.Ctensor) { lib.AtgMul(o, ct(a), ct(b)) })
}

func cDiv(a, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("div", func(o *lib.Ctensor) { lib.AtgDiv(o, ct(a), ct(b)) })
}

func cMulScalar(a *ts.Tensor, k float64) (*ts.Tensor, error) {
	return cop("mul_scalar", func(o *lib.Ctensor) { withScalar(k, func(s lib.Cscalar) { lib.AtgMulScalar(o, ct(a), s) }) })
}

func cAddScalar(a *ts.Tensor, k float64) (*ts.Tensor, error) {
	return cop("add_scalar", func(o *lib.Ctensor) { withScalar(k, func(s lib.Cscalar) { lib.AtgAddScalar(o, ct(a), s) }) })
}

func cClampMin(a *ts.Tensor, v float64) (*ts.Tensor, error) {
	return cop("clamp_min", func(o *lib.Ctensor) { withScalar(v, func(s lib.Cscalar) { lib.AtgClampMin(o, ct(a), s) }) })
}

func cMatmul(a, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("matmul", func(o *lib.Ctensor) { lib.AtgMatmul(o, ct(a), ct(b)) })
}

func cLinear(x, w, b *ts.Tensor) (*ts.Tensor, error) {
	return cop("linear", func(o *lib.Ctensor) { lib.AtgLinear(o, ct(x), ct(w), ct(b)) })
}

func cSilu(a *ts.Tensor) (*ts.Tensor, error) {
	return cop("silu", func(o *lib.Ctensor) { lib.AtgSilu(o, ct(a)) })
}

func cGelu(a *ts.Tensor, approximate string) (*ts.Tensor, error) {
	return cop("gelu", func(o *lib.Ctensor) { lib.AtgGelu(o, ct(a), approximate) })
}

func cSqrt(a *ts.Tensor) (*ts.Tensor, error) {
	return cop("sqrt", func(o *lib.Ctensor) { lib.AtgSqrt(o, ct(a)) })
}

func cLayerNorm(x *ts.Tensor, shape []int64, w, b *ts.Tensor, eps float64) (*ts.Tensor, error) {
	return cop("layer_norm", func(o *lib.Ctensor) { lib.AtgLayerNorm(o, ct(x), shape, len(shape), ct(w), ct(b), eps, 0) })
}

func cSoftmax(a *ts.Tensor, dim int64) (*ts.Tensor, error) {
	return cop("softmax", func(o *lib.Ctensor) { lib.AtgSoftmax(o, ct(a), dim, gotch.Float.CInt()) })
}

func cReshape(a *ts.Tensor, shape []int64) (*ts.Tensor, error) {
	return cop("reshape", func(o *lib.Ctensor) { lib.AtgReshape(o, ct(a), shape, len(shape)) })
}

func cPermute(a *ts.Tensor, dims []int64) (*ts.Tensor, error) {
	return cop("permute", func(o *lib.Ctensor) { lib.AtgPermute(o, ct(a), dims, len(dims)) })
}

func cTranspose(a *ts.Tensor, d0, d1 int64) (*ts.Tensor, error) {
	return cop("transpose", func(o *lib.Ctensor) { lib.AtgTranspose(o, ct(a), d0, d1) })
}

func cNarrow(a *ts.Tensor, dim, start, length int64) (*ts.Tensor, error) {
	return cop("narrow", func(o *lib.Ctensor) { lib.AtgNarrow(o, ct(a), dim, start, length) })
}

func cUnsqueeze(a *ts.Tensor, dim int64) (*ts.Tensor, error) {
	return cop("unsqueeze", func(o *lib.Ctensor) { lib.AtgUnsqueeze(o, ct(a), dim) })
}

func cCat(xs []*ts.Tensor, dim int64) (*ts.Tensor, error) {
	cs := make([]lib.Ctensor, len(xs))
	for i, x := range xs {
		cs[i] = ct(x)
	}
	return cop("cat", func(o *lib.Ctensor) { lib.AtgCat(o, cs, len(cs), dim) })
}

func cContiguous(a *ts.Tensor) (*ts.Tensor, error) {
	return cop("contiguous", func(o *lib.Ctensor) { lib.AtgContiguous(o, ct(a)) })
}

func cMeanDim(a *ts.Tensor, dims []int64, keep bool) (*ts.Tensor, error) {
	return cop("mean_dim", func(o *lib.Ctensor) { lib.AtgMeanDim(o, ct(a), dims, len(dims), cbool(keep), gotch.Float.CInt()) })
}

func cSumDim(a *ts.Tensor, dims []int64, keep bool) (*ts.Tensor, error) {
	return cop("sum_dim", func(o *lib.Ctensor) { lib.AtgSumDimIntlist(o, ct(a), dims, len(dims), cbool(keep), gotch.Float.CInt()) })
}

// cAddcmul is self + t1·t2.
func cAddcmul(self, t1, t2 *ts.Tensor) (*ts.Tensor, error) {
	return cop("addcmul", func(o *lib.Ctensor) { lib.AtgAddcmul(o, ct(self), ct(t1), ct(t2)) })
}

func cZeros(shape []int64, device gotch.Device) (*ts.Tensor, error) {
	return cop("zeros", func(o *lib.Ctensor) { lib.AtgZeros(o, shape, len(shape), gotch.Float.CInt(), device.CInt()) })
}

// cSDPA is libtorch's fused attention with an explicit mask, no dropout, not causal, scale 1.
func cSDPA(q, k, v, mask *ts.Tensor) (*ts.Tensor, error) {
	return cop("sdpa", func(o *lib.Ctensor) { lib.AtgScaledDotProductAttention(o, ct(q), ct(k), ct(v), ct(mask), 0, 0, 1, 0) })
}

func cbool(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func cTo(a *ts.Tensor, device gotch.Device) (*ts.Tensor, error) {
	return cop("to", func(o *lib.Ctensor) { lib.AtgTo(o, ct(a), device.CInt()) })
}

func cTotype(a *ts.Tensor, dtype gotch.DType) (*ts.Tensor, error) {
	return cop("totype", func(o *lib.Ctensor) { lib.AtgTotype(o, ct(a), dtype.CInt()) })
}

func cAbs(a *ts.Tensor) (*ts.Tensor, error) {
	return cop("abs", func(o *lib.Ctensor) { lib.AtgAbs(o, ct(a)) })
}

func cMean(a *ts.Tensor, dtype gotch.DType) (*ts.Tensor, error) {
	return cop("mean", func(o *lib.Ctensor) { lib.AtgMean(o, ct(a), dtype.CInt()) })
}

func cNorm(a *ts.Tensor) (*ts.Tensor, error) {
	return cop("norm", func(o *lib.Ctensor) { lib.AtgNorm(o, ct(a)) })
}

func cEmbedding(weight, ids *ts.Tensor) (*ts.Tensor, error) {
	return cop("embedding", func(o *lib.Ctensor) { lib.AtgEmbedding(o, ct(weight), ct(ids), -1, 0, 0) })
}
