package model

import (
	"github.com/sugarme/gotch/ts"
)

// Feature is a hidden-state tensor handed across the model's seams (to step-cache policies, adapters,
// reference extraction). It wraps the libtorch tensor so that only this package imports gotch.
//
// Ownership: a Feature a hook *receives* is borrowed — valid until the forward pass returns; Clone it to
// keep it. A Feature a hook *returns* belongs to the forward pass, which drops it; a policy that returns a
// cached value returns a Clone. Features are never modified in place, so clones can share storage.
type Feature struct{ t *ts.Tensor }

// Clone returns a new handle sharing the same storage (cheap).
func (f *Feature) Clone() (*Feature, error) {
	c, err := f.t.ShallowClone()
	if err != nil {
		return nil, err
	}
	return &Feature{t: c}, nil
}

// Drop frees the handle (the storage goes when its last handle does).
func (f *Feature) Drop() error {
	if f == nil || f.t == nil {
		return nil
	}
	return f.t.Drop()
}

// Shape returns the tensor's dimensions.
func (f *Feature) Shape() ([]int64, error) { return f.t.Size() }

// Values copies the feature to Go as float32.
func (f *Feature) Values() ([]float32, error) { return Float32s(f.t) }

// Sublayer names the parts of a block whose outputs a step-cache policy may reuse or forecast.
type Sublayer int

const (
	SublayerAttention Sublayer = iota // the self-attention output, before the adaLN gate
	SublayerMLP                       // the MLP output, before the adaLN gate
)

func (s Sublayer) String() string {
	if s == SublayerAttention {
		return "attn"
	}
	return "mlp"
}

// Hooks are the denoiser's seams for one forward pass. Every field is optional and a nil field costs
// nothing; a nil *Hooks is a plain forward.
type Hooks struct {
	// CaptureBlocks lists the blocks whose input hidden state [B, T, D] is passed to Capture (borrowed).
	CaptureBlocks []int
	Capture       func(block int, x *Feature) error

	// InjectAttention rewrites the attention sublayer of the blocks in InjectBlocks: it receives the block's
	// modulated, normalised input h and the self-attention output attn (both borrowed) and returns the
	// sublayer output to gate in its place (DreamCache adapters).
	InjectBlocks    []int
	InjectAttention func(block int, h, attn *Feature) (*Feature, error)

	// IdentityAttention lists the blocks whose self-attention map is replaced by the identity: every token
	// attends to itself alone (perturbed-attention guidance's weak prediction).
	IdentityAttention []int

	// Sublayer decides, per block and sublayer, whether to compute the pre-gate output (call compute, whose
	// result is borrowed) or to supply one (reuse/forecast). compute(nil) computes every token [B, T, D];
	// compute(sel) only the selected ones [B, K, D] (token-wise caching: attention queries from the selected
	// tokens over the keys and values of all). The adaLN gate of the current step is applied to whatever it
	// returns ([B, T, D]), as the reference implementations do.
	Sublayer func(block int, kind Sublayer, compute func(sel *Tokens) (*Feature, error)) (*Feature, error)

	// KeysValues, when set, supplies the keys and values [B, T, 2D] a block's attention runs over. It gets
	// those the pass computed (borrowed): every token's when the attention runs on all of them, the
	// selected tokens' [B, K, 2D] when on a selection, so that a token-wise cache can keep the others'.
	KeysValues func(block int, sel *Tokens, computed *Feature) (*Feature, error)

	// Reduce, when set, reduces the tokens of a block's attention computed over every token (AsymRnR): it
	// gets the block's modulated, normalised input h [B, T, D] (borrowed) and returns the tokens whose
	// queries are computed, the tokens whose keys and values are attended over, and for every token the
	// row of the queries' output it takes (restoration; [B, T]). A nil answer is the full attention. The
	// selections stay the policy's.
	Reduce func(block int, h *Feature) (queries, keysValues, restore *Tokens, err error)

	// AttentionReceived hears, for each block whose attention is computed over every token, the attention
	// each token receives [B, T] (borrowed): the softmax weights summed over heads and queries (ToCa's score).
	AttentionReceived func(block int, received *Feature) error

	// Probe receives block 0's modulated, normalised input (borrowed) before the stack runs: TeaCache's
	// indicator. It costs one LayerNorm and one modulate, only when set.
	Probe func(modulated0 *Feature) error

	// Branches lets a policy reuse guidance's other predictions (CFG-branch reuse).
	Branches *Branches

	// Stack controls the block stack: run(from, to, x) computes blocks [from, to) on x and returns the
	// result (borrowed). A policy may run a prefix, decide, then run the rest or add a cached residual.
	// Its result replaces the stack's output.
	Stack func(x *Feature, run func(from, to int, x *Feature) (*Feature, error)) (*Feature, error)
}

// Branch names a guidance prediction other than the conditional one.
type Branch int

const (
	BranchUnconditional Branch = iota // classifier-free guidance's
	BranchNegative                    // the negative prompts'
)

func (b Branch) String() string {
	if b == BranchUnconditional {
		return "unconditional"
	}
	return "negative"
}

// Branches are the seams of CFG-branch reuse. Skip is asked once per guided evaluation: when it answers
// true the step computes the conditional prediction alone and Supply returns each other branch's from it
// (cond borrowed; the result belongs to the step); otherwise Observe sees each computed pair (borrowed).
type Branches struct {
	Skip    func() bool
	Observe func(b Branch, cond, other *Feature) error
	Supply  func(b Branch, cond *Feature) (*Feature, error)
}

func containsInt(xs []int, v int) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}
