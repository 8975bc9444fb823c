package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Linear is y = x·Wᵀ + b.
type Linear struct {
	Weight, Bias *ts.Tensor
}

// initKind picks a layer's initialisation; gotch's own defaults (N(0,1)) are not PyTorch's.
type initKind int

const (
	initTorchDefault initKind = iota // PyTorch nn.Linear: U(±1/√in) for weight and bias
	initXavier                       // xavier_uniform weight, zero bias (DiT's _basic_init)
	initZero                         // zeros (adaLN-Zero modulation, final layer)
	initNormal02                     // N(0, 0.02) weight, zero bias (DiT's timestep MLP)
)

// NewLinear adds "weight" [out,in] and "bias" [out] under p.
func NewLinear(p *nn.Path, in, out int64) (*Linear, error) {
	return newLinear(p, in, out, initTorchDefault)
}

func newLinear(p *nn.Path, in, out int64, kind initKind) (*Linear, error) {
	var wInit, bInit nn.Init
	switch kind {
	case initXavier:
		bound := math.Sqrt(6 / float64(in+out))
		wInit, bInit = nn.NewUniformInit(-bound, bound), nn.NewConstInit(0)
	case initZero:
		wInit, bInit = nn.NewConstInit(0), nn.NewConstInit(0)
	case initNormal02:
		wInit, bInit = nn.NewRandnInit(0, 0.02), nn.NewConstInit(0)
	default:
		bound := 1 / math.Sqrt(float64(in))
		wInit, bInit = nn.NewUniformInit(-bound, bound), nn.NewUniformInit(-bound, bound)
	}
	w, err := p.NewVar("weight", []int64{out, in}, wInit)
	if err != nil {
		return nil, fmt.Errorf("model: %s.weight: %w", p.Paths(), err)
	}
	b, err := p.NewVar("bias", []int64{out}, bInit)
	if err != nil {
		return nil, fmt.Errorf("model: %s.bias: %w", p.Paths(), err)
	}
	return &Linear{Weight: w, Bias: b}, nil
}

// Forward returns a new tensor owned by the caller.
func (l *Linear) Forward(x *ts.Tensor) (*ts.Tensor, error) { return ts.Linear(x, l.Weight, l.Bias) }

// LayerNorm with affine parameters (the text encoder's; DiT's blocks use none).
type LayerNorm struct {
	Weight, Bias *ts.Tensor
	Width        int
}

func newLayerNorm(p *nn.Path, width int) (*LayerNorm, error) {
	w, err := p.NewVar("weight", []int64{int64(width)}, nn.NewConstInit(1))
	if err != nil {
		return nil, fmt.Errorf("model: %s.weight: %w", p.Paths(), err)
	}
	b, err := p.NewVar("bias", []int64{int64(width)}, nn.NewConstInit(0))
	if err != nil {
		return nil, fmt.Errorf("model: %s.bias: %w", p.Paths(), err)
	}
	return &LayerNorm{Weight: w, Bias: b, Width: width}, nil
}

// attentionLayer is DiT's Attention: fused qkv projection, then an output projection.
type attentionLayer struct {
	qkv, proj *Linear
	heads     int
	width     int
}

func newAttention(p *nn.Path, width, heads int, kind initKind) (*attentionLayer, error) {
	qkv, err := newLinear(p.Sub("qkv"), int64(width), int64(3*width), kind)
	if err != nil {
		return nil, err
	}
	proj, err := newLinear(p.Sub("proj"), int64(width), int64(width), kind)
	if err != nil {
		return nil, err
	}
	return &attentionLayer{qkv: qkv, proj: proj, heads: heads, width: width}, nil
}

func (a *attentionLayer) forward(o *ops, x *ts.Tensor) *ts.Tensor {
	q, k, v := a.project(o, x)
	return o.linear(o.attention(q, k, v, a.heads), a.proj)
}

// project is x's queries, keys and values.
func (a *attentionLayer) project(o *ops, x *ts.Tensor) (q, k, v *ts.Tensor) {
	qkv := o.linear(x, a.qkv)
	w := int64(a.width)
	return o.narrow(qkv, 2, 0, w), o.narrow(qkv, 2, w, w), o.narrow(qkv, 2, 2*w, w)
}

// forwardReceived is forward that also returns the attention each token receives [B, T].
func (a *attentionLayer) forwardReceived(o *ops, x *ts.Tensor) (out, received *ts.Tensor) {
	q, k, v := a.project(o, x)
	att, probs := o.attentionProbs(q, k, v, a.heads)
	return o.linear(att, a.proj), o.sumDim(probs, 1, 2)
}

// queries projects x [B, K, D] to its queries alone (the fused projection's first third).
func (a *attentionLayer) queries(o *ops, x *ts.Tensor) *ts.Tensor {
	w := int64(a.width)
	return o.keep(cLinear(x, o.narrow(a.qkv.Weight, 0, 0, w), o.narrow(a.qkv.Bias, 0, 0, w)))
}

// keysValues projects x [B, K, D] to its keys and values [B, K, 2D] alone.
func (a *attentionLayer) keysValues(o *ops, x *ts.Tensor) *ts.Tensor {
	w := int64(a.width)
	return o.keep(cLinear(x, o.narrow(a.qkv.Weight, 0, w, 2*w), o.narrow(a.qkv.Bias, 0, w, 2*w)))
}

// forwardTokens is forward for the selected tokens' queries alone (xs, x at sel: [B, K, D]) over every
// token's keys and values; a nil selection is forward. kv, when set, supplies the keys and values attended
// over from those computed (Hooks.KeysValues).
func (a *attentionLayer) forwardTokens(o *ops, x, xs *ts.Tensor, sel *Tokens, kv func(computed *ts.Tensor) *ts.Tensor) *ts.Tensor {
	if sel == nil && kv == nil {
		return a.forward(o, x)
	}
	w := int64(a.width)
	var q, keysValues *ts.Tensor
	if kv == nil { // queries from the selection, keys and values from every token
		q, keysValues = a.queries(o, xs), a.keysValues(o, x)
	} else {
		qkv := o.linear(xs, a.qkv)
		q = o.narrow(qkv, 2, 0, w)
		keysValues = kv(o.narrow(qkv, 2, w, 2*w))
	}
	k, v := o.narrow(keysValues, 2, 0, w), o.narrow(keysValues, 2, w, w)
	return o.linear(o.attention(q, k, v, a.heads), a.proj)
}

// forwardReduced is forward with queries from the tokens q alone over the keys and values of the tokens
// kv, each token then taking the output row restore names (token reduction and restoration); nil
// selections are every token.
func (a *attentionLayer) forwardReduced(o *ops, x *ts.Tensor, q, kv, restore *Tokens) *ts.Tensor {
	if q == nil && kv == nil {
		return a.forward(o, x)
	}
	w := int64(a.width)
	keysValues := a.keysValues(o, o.gatherTokens(x, kv))
	k, v := o.narrow(keysValues, 2, 0, w), o.narrow(keysValues, 2, w, w)
	out := o.linear(o.attention(a.queries(o, o.gatherTokens(x, q)), k, v, a.heads), a.proj)
	if q == nil || restore == nil {
		return out
	}
	return o.gatherTokens(out, restore)
}

// identity is the layer with its attention map replaced by the identity (each token attends to itself
// alone): the values, projected. Perturbed-attention guidance's weak prediction.
func (a *attentionLayer) identity(o *ops, x *ts.Tensor) *ts.Tensor {
	w := int64(a.width)
	return o.linear(o.narrow(o.linear(x, a.qkv), 2, 2*w, w), a.proj)
}

// mlpLayer is fc1 → GELU(tanh) → fc2.
type mlpLayer struct{ fc1, fc2 *Linear }

func newMLP(p *nn.Path, width, hidden int, kind initKind) (*mlpLayer, error) {
	fc1, err := newLinear(p.Sub("fc1"), int64(width), int64(hidden), kind)
	if err != nil {
		return nil, err
	}
	fc2, err := newLinear(p.Sub("fc2"), int64(hidden), int64(width), kind)
	if err != nil {
		return nil, err
	}
	return &mlpLayer{fc1: fc1, fc2: fc2}, nil
}

func (m *mlpLayer) forward(o *ops, x *ts.Tensor) *ts.Tensor {
	return o.linear(o.gelu(o.linear(x, m.fc1)), m.fc2)
}
