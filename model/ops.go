package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ops runs tensor operations inside a Scope and stops at the first error, so layer code reads like the
// math (o.add(x, o.mul(g, a))) and checks o.err once. Every result is owned by the scope; release the
// ones that outlive it with s.Release.
type ops struct {
	s   *Scope
	err error
}

func newOps(s *Scope) *ops { return &ops{s: s} }

func (o *ops) keep(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		if o.err == nil {
			o.err = err
		}
		return nil
	}
	return o.s.Keep(t)
}

// size is a's shape; nil (with o.err set, or already set) when it cannot be had.
func (o *ops) size(a *ts.Tensor) []int64 {
	if !o.ok(a) {
		return nil
	}
	sz, err := a.Size()
	if err != nil {
		o.err = err
		return nil
	}
	return sz
}

// ok reports whether every operand is usable (no earlier error, no nil input).
func (o *ops) ok(ts ...*ts.Tensor) bool {
	if o.err != nil {
		return false
	}
	for _, t := range ts {
		if t == nil {
			o.err = fmt.Errorf("model: nil tensor operand")
			return false
		}
	}
	return true
}

func (o *ops) add(a, b *ts.Tensor) *ts.Tensor {
	if !o.ok(a, b) {
		return nil
	}
	return o.keep(cAdd(a, b))
}

func (o *ops) sub(a, b *ts.Tensor) *ts.Tensor {
	if !o.ok(a, b) {
		return nil
	}
	return o.keep(cSub(a, b))
}

func (o *ops) mul(a, b *ts.Tensor) *ts.Tensor {
	if !o.ok(a, b) {
		return nil
	}
	return o.keep(cMul(a, b))
}

func (o *ops) scale(a *ts.Tensor, k float64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cMulScalar(a, k))
}

func (o *ops) addScalar(a *ts.Tensor, k float64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cAddScalar(a, k))
}

func (o *ops) matmul(a, b *ts.Tensor) *ts.Tensor {
	if !o.ok(a, b) {
		return nil
	}
	return o.keep(cMatmul(a, b))
}

func (o *ops) linear(x *ts.Tensor, l *Linear) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	return o.keep(cLinear(x, l.Weight, l.Bias))
}

func (o *ops) silu(a *ts.Tensor) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cSilu(a))
}

// gelu is the tanh approximation DiT uses.
func (o *ops) gelu(a *ts.Tensor) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cGelu(a, "tanh"))
}

// layerNorm over the last dimension without affine parameters (eps 1e-6), as in DiT's blocks.
func (o *ops) layerNorm(x *ts.Tensor, width int, weight, bias *ts.Tensor) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	if weight == nil {
		weight, bias = ts.None, ts.None
	}
	return o.keep(cLayerNorm(x, []int64{int64(width)}, weight, bias, 1e-6))
}

func (o *ops) softmax(a *ts.Tensor, dim int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cSoftmax(a, dim))
}

func (o *ops) reshape(a *ts.Tensor, shape ...int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cReshape(a, shape))
}

func (o *ops) permute(a *ts.Tensor, dims ...int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cPermute(a, dims))
}

func (o *ops) transpose(a *ts.Tensor, d0, d1 int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cTranspose(a, d0, d1))
}

func (o *ops) narrow(a *ts.Tensor, dim, start, length int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cNarrow(a, dim, start, length))
}

func (o *ops) unsqueeze(a *ts.Tensor, dim int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cUnsqueeze(a, dim))
}

func (o *ops) cat(dim int64, xs ...*ts.Tensor) *ts.Tensor {
	if !o.ok(xs...) {
		return nil
	}
	return o.keep(cCat(xs, dim))
}

func (o *ops) contiguous(a *ts.Tensor) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cContiguous(a))
}

func (o *ops) meanDim(a *ts.Tensor, dim int64, keep bool) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cMeanDim(a, []int64{dim}, keep))
}

// modulate is adaLN's x·(1 + scale) + shift, with shift and scale1 = 1 + scale broadcast over tokens: one
// fused multiply-add (gotch's per-op cost is high enough to count ops).
func (o *ops) modulate(x, shift, scale1 *ts.Tensor) *ts.Tensor {
	if !o.ok(x, shift, scale1) {
		return nil
	}
	return o.keep(cAddcmul(shift, x, scale1))
}

// gatedAdd is the residual update x + gate·y, fused.
func (o *ops) gatedAdd(x, gate, y *ts.Tensor) *ts.Tensor {
	if !o.ok(x, gate, y) {
		return nil
	}
	return o.keep(cAddcmul(x, gate, y))
}

// attention is multi-head self-attention (or cross-attention when kv != q's source) written with
// matmul/softmax: q [B,Tq,D], k,v [B,Tk,D] → [B,Tq,D].
func (o *ops) attention(q, k, v *ts.Tensor, heads int) *ts.Tensor {
	out, _ := o.attentionProbs(q, k, v, heads)
	return out
}

// attentionProbs is attention that also returns its softmax weights [B, H, Tq, Tk].
func (o *ops) attentionProbs(q, k, v *ts.Tensor, heads int) (out, probs *ts.Tensor) {
	if !o.ok(q, k, v) {
		return nil, nil
	}
	qs, ks := o.size(q), o.size(k)
	if qs == nil || ks == nil {
		return nil, nil
	}
	b, tq, d, tk := qs[0], qs[1], qs[2], ks[1]
	h := int64(heads)
	hd := d / h
	split := func(x *ts.Tensor, t int64) *ts.Tensor { // [B,T,D] → [B,H,T,hd]
		return o.permute(o.reshape(x, b, t, h, hd), 0, 2, 1, 3)
	}
	qh, kh, vh := split(q, tq), split(k, tk), split(v, tk)
	scores := o.scale(o.matmul(qh, o.transpose(kh, 2, 3)), 1/math.Sqrt(float64(hd)))
	probs = o.softmax(scores, -1)
	out = o.matmul(probs, vh) // [B,H,Tq,hd]
	return o.reshape(o.permute(out, 0, 2, 1, 3), b, tq, d), probs
}

// sdpa is softmax(q·kᵀ)·v over [B, H, T, hd] with q already scaled: libtorch's fused kernel on the CPU, where
// libtorch 2.6 refuses an undefined mask, so a zero one is passed. Other devices take the unfused form:
// libtorch 2.11's CUDA kernel crashed with that one-element mask, and on a GPU the unfused form is cheap.
func (o *ops) sdpa(q, k, v *ts.Tensor, device gotch.Device) *ts.Tensor {
	if !o.ok(q, k, v) {
		return nil
	}
	if device != gotch.CPU {
		return o.sdpaUnfused(q, k, v)
	}
	mask := o.keep(cZeros([]int64{1, 1, 1, 1}, device))
	if !o.ok(mask) {
		return nil
	}
	return o.keep(cSDPA(q, k, v, mask))
}

// sdpaUnfused is sdpa written with matmul and softmax.
func (o *ops) sdpaUnfused(q, k, v *ts.Tensor) *ts.Tensor {
	return o.matmul(o.softmax(o.matmul(q, o.transpose(k, 2, 3)), -1), v)
}

func (o *ops) div(a, b *ts.Tensor) *ts.Tensor {
	if !o.ok(a, b) {
		return nil
	}
	return o.keep(cDiv(a, b))
}

// sumDim sums a over the given dimensions (dropped).
func (o *ops) sumDim(a *ts.Tensor, dims ...int64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cSumDim(a, dims, false))
}

func (o *ops) clampMin(a *ts.Tensor, v float64) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cClampMin(a, v))
}

func (o *ops) sqrt(a *ts.Tensor) *ts.Tensor {
	if !o.ok(a) {
		return nil
	}
	return o.keep(cSqrt(a))
}
