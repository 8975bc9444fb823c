package classify

import (
	"context"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/cachetlab/cachet"
)

// Head is the zero-shot head: one unit prototype per label (the CLIP-text analogue). Features are
// projected into its space before any comparison: minus Center (when set), then L2-normalised.
type Head struct {
	Labels []string
	W      [][]float32 // unit rows, one per label
	// Center is the mean of the raw prototypes. Globally pooled DiT features share a large common
	// component; removing the labels' mean spreads them out. It uses no data beyond the prototypes
	// themselves. Nil: no centring.
	Center []float32
	// Basis (rank × features), when set, maps a centred feature into a pool's whitened coordinates
	// (FitWhitening); W and Center are then in that space and the pool's mean. Nil: no whitening.
	Basis [][]float32
}

// NewHead builds a head from raw prototypes (means of pooled unit features, one per label).
func NewHead(labels []string, raw [][]float64, center bool) (*Head, error) {
	if len(labels) == 0 || len(labels) != len(raw) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "a head needs one prototype per label (%d labels, %d prototypes)", len(labels), len(raw))
	}
	d := len(raw[0])
	for i, r := range raw {
		if len(r) != d || d == 0 {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "prototype %d (%s) has %d values, want %d", i, labels[i], len(r), d)
		}
	}
	h := &Head{Labels: labels, W: make([][]float32, len(raw))}
	var mu []float64
	if center && len(raw) > 1 {
		mu = make([]float64, d)
		for _, r := range raw {
			for j, v := range r {
				mu[j] += v / float64(len(raw))
			}
		}
		h.Center = make([]float32, d)
		for j, v := range mu {
			h.Center[j] = float32(v)
		}
	}
	for i, r := range raw {
		v := make([]float64, d)
		for j, x := range r {
			v[j] = x
			if mu != nil {
				v[j] -= mu[j]
			}
		}
		h.W[i] = Normalize(v)
	}
	return h, nil
}

// Dims is the size of the head's space (its prototypes and projected features).
func (h *Head) Dims() int { return len(h.W[0]) }

// InputDims is the raw feature size the head expects.
func (h *Head) InputDims() int {
	if h.Basis != nil {
		return len(h.Basis[0])
	}
	return h.Dims()
}

// Project maps a raw pooled feature into the head's space (centred, whitened when the head is, unit length).
func (h *Head) Project(raw []float32) []float32 {
	v := make([]float64, len(raw))
	for j, x := range raw {
		v[j] = float64(x)
		if h.Center != nil {
			v[j] -= float64(h.Center[j])
		}
	}
	if h.Basis == nil {
		return Normalize(v)
	}
	z := make([]float64, len(h.Basis))
	for k, b := range h.Basis {
		s := 0.0
		for j, x := range b {
			s += float64(x) * v[j]
		}
		z[k] = s
	}
	return Normalize(z)
}

// Whitened is the head moved into a pool's whitened space (FitWhitening's mean and basis): each
// prototype's direction from the prototypes' mean, mapped through the basis, so the prototypes' centre
// lands on the pool's mean.
func (h *Head) Whitened(mean []float32, basis [][]float32) (*Head, error) {
	if h.Basis != nil {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the head is already whitened")
	}
	if len(mean) != h.Dims() || len(basis) == 0 || len(basis[0]) != h.Dims() {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "whitening of %d values for a head of %d", len(mean), h.Dims())
	}
	out := &Head{Labels: h.Labels, W: make([][]float32, len(h.W)), Center: mean, Basis: basis}
	for c, w := range h.W {
		z := make([]float64, len(basis))
		for k, b := range basis {
			z[k] = Dot(b, w)
		}
		out.W[c] = Normalize(z)
	}
	return out, nil
}

// Cosines are cos(f, W_c) for a projected feature f.
func (h *Head) Cosines(f []float32) []float64 {
	out := make([]float64, len(h.W))
	for c, w := range h.W {
		out[c] = Dot(f, w)
	}
	return out
}

// Logits are the zero-shot head's logits LogitScale·cos(f, W_c) for a projected feature f.
func (h *Head) Logits(f []float32) []float64 { return zeroShotLogits(h.Cosines(f)) }

func zeroShotLogits(cos []float64) []float64 {
	out := make([]float64, len(cos))
	for c, v := range cos {
		out[c] = LogitScale * v
	}
	return out
}

// Probs is TFUP's pseudo-label distribution softmax(10·cos(f, W)).
func (h *Head) Probs(f []float32) []float64 { return Softmax(h.Cosines(f), PseudoScale) }

// Mean returns the mean of features as float64 (a raw prototype).
func Mean(features [][]float32) []float64 {
	if len(features) == 0 {
		return nil
	}
	out := make([]float64, len(features[0]))
	for _, f := range features {
		for j, v := range f {
			out[j] += float64(v)
		}
	}
	for j := range out {
		out[j] /= float64(len(features))
	}
	return out
}

// Model is a built cache model in memory: its head, its entries and the residual's weights. Models are
// immutable once built, so a loaded one can be shared by concurrent requests.
type Model struct {
	ID      int64
	Method  Method
	Head    *Head
	Entries []Entry
	Alpha   float64
	Beta    float64
	// Values and Lambda: a Tip-Adapter cache's value kind and, when solved, the ridge it was solved with
	// (at Beta: the values belong to that affinity).
	Values Values
	Lambda float64
}

// Resolve re-solves a solved cache's values for the model's Beta and Lambda (after either changed).
func (m *Model) Resolve() error { return m.ResolveContext(context.Background()) }

// ResolveContext is Resolve stopping with a CodeCanceled error when ctx ends (SolveValues).
func (m *Model) ResolveContext(ctx context.Context) error {
	if m.Values != ValuesSolved {
		return nil
	}
	dots, err := keyDots(ctx, m.Entries)
	if err != nil {
		return err
	}
	return m.resolveWith(ctx, dots)
}

// resolveWith is Resolve given the entries' key cosines (keyDots).
func (m *Model) resolveWith(ctx context.Context, dots *mat.SymDense) error {
	vs, err := solveValues(ctx, m.Entries, dots, len(m.Head.Labels), m.Beta, m.Lambda)
	if err != nil {
		return err
	}
	entries := make([]Entry, len(m.Entries))
	for i, e := range m.Entries {
		e.Values = vs[i]
		entries[i] = e
	}
	m.Entries = entries
	return nil
}

// Score computes one projected feature's logits over the given entries (all of the model's when nil).
func (m *Model) Score(f []float32, entries []Entry) Scores {
	cos := m.Head.Cosines(f)
	s := Scores{ZeroShot: zeroShotLogits(cos), Logits: make([]float64, len(cos))}
	if entries == nil {
		entries = m.Entries
	}
	switch {
	case m.Values == ValuesPropagated:
		s.Cache = ResidualPropagated(f, entries, len(cos), propagateNeighbours, m.Alpha, m.Beta)
	case m.Method == MethodTFUP:
		s.Cache = ResidualTFUP(f, cos, entries, len(cos), m.Alpha, m.Beta)
	case m.Method == MethodTip:
		s.Cache = ResidualTip(f, entries, len(cos), m.Alpha, m.Beta)
	default:
		s.Cache = make([]float64, len(cos))
	}
	for c := range s.Logits {
		s.Logits[c] = s.ZeroShot[c] + s.Cache[c]
	}
	return s
}

// Argmax is the index of the largest value (the first on ties).
func Argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] || math.IsNaN(x[best]) {
			best = i
		}
	}
	return best
}
