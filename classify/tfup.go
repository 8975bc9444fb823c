// Package classify is Cachet's training-free classification: a zero-shot head made of class prototypes
// (features of the model's own samples), TFUP's representative-sample selection and feature-cache model
// (kept in pgvector), TFUP's multi-level similarity with residual logits, and labelled few-shot caches in
// the Tip-Adapter form. Features come from the shared extraction pass (featurecache).
package classify

import (
	"github.com/cachetlab/cachet/featurecache"
	"math"
	"slices"
)

// Scales of TFUP's reference code: the zero-shot logits are 100·cos (CLIP's logit scale), pseudo-label
// distributions use softmax(10·cos).
const (
	LogitScale  = 100.0
	PseudoScale = 10.0
	// DefaultAlpha and DefaultBeta weigh the cache's residual logits (TFUP's and Tip-Adapter's defaults here).
	DefaultAlpha = 0.3
	DefaultBeta  = 1.0
)

// Method names how a cache model was built.
type Method string

const (
	MethodTFUP = Method("tfup")        // unlabelled pool → representative samples with pseudo-labels
	MethodTip  = Method("tip-adapter") // labelled samples as keys (Tip-Adapter)
)

// NumRepresentatives is TFUP's K per class: clamp(⌊0.3·N/C⌋, 9, 16).
func NumRepresentatives(n, classes int) int {
	if classes <= 0 {
		return 0
	}
	return min(16, max(9, int(math.Floor(0.3*float64(n)/float64(classes)))))
}

// Representative is one selected cache entry: sample Index with pseudo-label Label and its prototype score
// (lower is more typical of the class).
type Representative struct {
	Index int
	Label int
	Score float64
}

// SelectRepresentatives is TFUP's selection over zero-shot distributions probs[i] (softmax(10·f Wᵀ)):
// per class c, the 2K samples most confident in c; each scores s_j = Σ_k KL(p_j ‖ p_k) over that set;
// the K lowest become class c's entries with pseudo-label c. A sample may serve several classes, as in
// the reference code. Classes with fewer candidates get fewer entries.
func SelectRepresentatives(probs [][]float64, classes, k int) []Representative {
	out := make([]Representative, 0, classes*k)
	for c := range classes {
		idx := make([]int, len(probs))
		for i := range idx {
			idx[i] = i
		}
		// Stable: equal confidences keep sample order, so a selection is reproducible.
		slices.SortStableFunc(idx, func(a, b int) int { return -cmpFloat(probs[a][c], probs[b][c]) })
		cand := idx[:min(2*k, len(idx))]
		scored := make([]Representative, len(cand))
		for j, a := range cand {
			s := 0.0
			for _, b := range cand {
				s += KL(probs[a], probs[b])
			}
			scored[j] = Representative{Index: a, Label: c, Score: s}
		}
		slices.SortStableFunc(scored, func(a, b Representative) int { return cmpFloat(a.Score, b.Score) })
		out = append(out, scored[:min(k, len(scored))]...)
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Softmax returns softmax(scale·x).
func Softmax(x []float64, scale float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, scale*v)
	}
	out := make([]float64, len(x))
	sum := 0.0
	for i, v := range x {
		out[i] = math.Exp(scale*v - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// klEps keeps KL finite where a distribution underflows to 0 (softmax(10·cos) rarely does).
const klEps = 1e-12

// KL is Σ p·log(p/q).
func KL(p, q []float64) float64 {
	s := 0.0
	for i, pi := range p {
		if pi <= 0 {
			continue
		}
		s += pi * math.Log(pi/max(q[i], klEps))
	}
	return s
}

// Dot is the inner product (the cosine for unit vectors).
func Dot(a, b []float32) float64 {
	var s0, s1, s2, s3 float32
	n := min(len(a), len(b))
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return float64(s0 + s1 + s2 + s3)
}

// Normalize returns v/‖v‖ (zeros when v is zero).
func Normalize(v []float64) []float32 { return featurecache.Unit(v) }

// Entry is one key of a cache model: a unit feature, its (pseudo-)label, for TFUP the zero-shot
// distribution of its sample, and for a Tip-Adapter cache with solved values its value vector (nil: the
// one-hot of Label).
type Entry struct {
	Key    []float32
	Label  int
	Probs  []float64
	Values []float64
}

// Scores are one image's logits and their two parts.
type Scores struct {
	ZeroShot []float64 // 100·f Wᵀ
	Cache    []float64 // the cache's residual logits (zero without a cache)
	// Diffusion is the diffusion rerank's part (nil unless asked for)
	Diffusion []float64
	Logits    []float64 // ZeroShot + Cache (+ Diffusion)
}

// ResidualTFUP is TFUP's multi-level similarity over the given entries: A = f Fᵀ, D_j = KL(p ‖ p_j)
// with p = softmax(10·cos(f, W)); D is z-scored, min-max scaled, sim = 2·(1 − minmax(z)); R = A ⊙ sim;
// residual logits α·Σ_j exp(−β(1 − R_j))·onehot(label_j).
func ResidualTFUP(f []float32, cos []float64, entries []Entry, classes int, alpha, beta float64) []float64 {
	out := make([]float64, classes)
	if len(entries) == 0 {
		return out
	}
	p := Softmax(cos, PseudoScale)
	d := make([]float64, len(entries))
	for j, e := range entries {
		d[j] = KL(p, e.Probs)
	}
	sim := minmaxSim(zscore(d))
	for j, e := range entries {
		r := Dot(f, e.Key) * sim[j]
		out[e.Label] += alpha * math.Exp(-beta*(1-r))
	}
	return out
}

// ResidualTip is Tip-Adapter's cache: α·Σ_j exp(−β(1 − f·F_j))·V_j, V_j the entry's values (one-hot
// of its label unless solved).
func ResidualTip(f []float32, entries []Entry, classes int, alpha, beta float64) []float64 {
	out := make([]float64, classes)
	for _, e := range entries {
		a := alpha * math.Exp(-beta*(1-Dot(f, e.Key)))
		if e.Values == nil {
			out[e.Label] += a
			continue
		}
		for c, v := range e.Values {
			out[c] += a * v
		}
	}
	return out
}

// zscore standardises d (population standard deviation, as torch.std's unbiased form differs only by a
// constant factor that min-max removes).
func zscore(d []float64) []float64 {
	mean := 0.0
	for _, v := range d {
		mean += v
	}
	mean /= float64(len(d))
	vr := 0.0
	for _, v := range d {
		vr += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(vr / float64(len(d)))
	out := make([]float64, len(d))
	for i, v := range d {
		if sd > 0 {
			out[i] = (v - mean) / sd
		}
	}
	return out
}

// minmaxSim maps z to 2·(1 − (z − min)/(max − min)): the most similar distribution gets 2, the least 0.
// A constant row (one entry, or identical distances) carries no information and gets 1 everywhere.
func minmaxSim(z []float64) []float64 {
	lo, hi := slices.Min(z), slices.Max(z)
	out := make([]float64, len(z))
	for i, v := range z {
		if hi > lo {
			out[i] = 2 * (1 - (v-lo)/(hi-lo))
		} else {
			out[i] = 1
		}
	}
	return out
}
