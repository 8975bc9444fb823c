package stepcache

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"

	"github.com/cachetlab/cachet/model"
)

// HycaRecorder is a StepCache that computes every step and records, per unit, the trajectories of a
// sample of tokens (every tokenStride-th of each row) channel by channel. It serves every run of a
// calibration (each Begin starts a new run); Profile gives what `cachet calibrate hyca` saves.
type HycaRecorder struct {
	depth, tokenStride int
	runs               []map[unitKey][][]float32 // per run, per unit: per step [samples·D]
	width              int
	step               int
}

// NewHycaRecorder makes a recorder for a model of depth blocks.
func NewHycaRecorder(depth int) *HycaRecorder { return &HycaRecorder{depth: depth, tokenStride: 4} }

func (r *HycaRecorder) Begin(model.Schedule) error {
	r.runs = append(r.runs, map[unitKey][][]float32{})
	return nil
}

func (r *HycaRecorder) End() {}

func (r *HycaRecorder) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	run := r.runs[len(r.runs)-1]
	return eval(&model.Hooks{Sublayer: func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		v, err := compute(nil)
		if err != nil {
			return nil, err
		}
		shape, err := v.Shape()
		if err != nil || len(shape) != 3 {
			return nil, fmt.Errorf("stepcache: hyca recorder: a unit output of shape %v: %v", shape, err)
		}
		vals, err := v.Values()
		if err != nil {
			return nil, err
		}
		rows, tokens, width := int(shape[0]), int(shape[1]), int(shape[2])
		r.width = width
		var sample []float32
		for row := range rows {
			for t := 0; t < tokens; t += r.tokenStride {
				at := (row*tokens + t) * width
				sample = append(sample, vals[at:at+width]...)
			}
		}
		key := unitKey{block, kind}
		run[key] = append(run[key], sample)
		return v.Clone()
	}})
}

// Profile clusters each unit's channels into clusters groups by how their trajectories move and gives
// each group the solver whose forecasts, on the full-step schedule (warmup, interval), missed the recorded
// values least. The result is one solver per channel, units block-major (attention, then MLP).
func (r *HycaRecorder) Profile(clusters, warmup, interval int) ([]float64, error) {
	if len(r.runs) == 0 || r.width == 0 {
		return nil, fmt.Errorf("stepcache: hyca: nothing recorded")
	}
	var out []float64
	for u := range 2 * r.depth {
		key := unitKey{block: u / 2, kind: model.Sublayer(u % 2)}
		traj := r.trajectories(key)
		if len(traj) == 0 || len(traj[0][0]) < 4 {
			return nil, fmt.Errorf("stepcache: hyca: block %d %s has fewer than 4 recorded steps", key.block, key.kind)
		}
		labels := kmeans(standardise(descriptors(traj)), clusters, 20)
		best := make([]hycaSolver, clusters)
		for c := range clusters {
			lowest := math.Inf(1)
			for s := range numSolvers {
				var sum float64
				for d, l := range labels {
					if l == c {
						sum += forecastError(s, traj[d], warmup, interval)
					}
				}
				if sum < lowest {
					lowest, best[c] = sum, s
				}
			}
		}
		for _, l := range labels {
			out = append(out, float64(best[l]))
		}
	}
	return out, nil
}

// trajectories are a unit's recordings per channel: [D][samples][steps].
func (r *HycaRecorder) trajectories(key unitKey) [][][]float64 {
	out := make([][][]float64, r.width)
	for _, run := range r.runs {
		steps := run[key]
		if len(steps) == 0 {
			continue
		}
		samples := len(steps[0]) / r.width
		for d := range r.width {
			for j := range samples {
				tr := make([]float64, len(steps))
				for s, v := range steps {
					tr[s] = float64(v[j*r.width+d])
				}
				out[d] = append(out[d], tr)
			}
		}
	}
	return out
}

// descriptors are HyCa's indicators of a channel's motion, averaged over its sampled trajectories: the
// mean size of its first, second and third differences (logged), its energy (logged), jerk and curvature
// ratios, and the spectral flatness of its first difference.
func descriptors(traj [][][]float64) [][]float64 {
	const eps = 1e-12
	out := make([][]float64, len(traj))
	for d, samples := range traj {
		acc := make([]float64, 7)
		for _, x := range samples {
			d1, d2, d3 := diff(x), diff(diff(x)), diff(diff(diff(x)))
			m1, m2, m3 := meanAbs(d1), meanAbs(d2), meanAbs(d3)
			var energy float64
			for _, v := range x {
				energy += v * v / float64(len(x))
			}
			vals := []float64{m1, m2, m3, energy, m3 / (m1 + eps), m2 / (m1 + eps), flatness(d1)}
			for i, v := range vals {
				acc[i] += v / float64(len(samples))
			}
		}
		for i := range 4 {
			acc[i] = math.Log(acc[i] + eps)
		}
		out[d] = acc
	}
	return out
}

func diff(x []float64) []float64 {
	out := make([]float64, max(0, len(x)-1))
	for i := range out {
		out[i] = x[i+1] - x[i]
	}
	return out
}

func meanAbs(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += math.Abs(v)
	}
	return s / float64(max(1, len(x)))
}

// flatness is the geometric over the arithmetic mean of x's power spectrum (without the mean term):
// 1 for noise, near 0 for a smooth trend.
func flatness(x []float64) float64 {
	n := len(x)
	if n < 3 {
		return 0
	}
	var logSum, sum float64
	bins := n / 2
	for k := 1; k <= bins; k++ {
		var z complex128
		for t, v := range x {
			z += complex(v, 0) * cmplx.Exp(complex(0, -2*math.Pi*float64(k*t)/float64(n)))
		}
		p := real(z)*real(z) + imag(z)*imag(z) + 1e-24
		logSum += math.Log(p)
		sum += p
	}
	return math.Exp(logSum/float64(bins)) / (sum / float64(bins))
}

// standardise z-scores each descriptor over the channels.
func standardise(x [][]float64) [][]float64 {
	dims := len(x[0])
	for i := range dims {
		var mean, sq float64
		for _, v := range x {
			mean += v[i] / float64(len(x))
		}
		for _, v := range x {
			sq += (v[i] - mean) * (v[i] - mean) / float64(len(x))
		}
		sd := math.Sqrt(sq) + 1e-12
		for _, v := range x {
			v[i] = (v[i] - mean) / sd
		}
	}
	return x
}

// kmeans clusters points into k groups (k-means++ seeding from a fixed seed, then Lloyd's iterations) and
// returns each point's group.
func kmeans(points [][]float64, k, iterations int) []int {
	rng := rand.New(rand.NewPCG(1, 2))
	k = min(k, len(points))
	centres := [][]float64{append([]float64(nil), points[rng.IntN(len(points))]...)}
	dist := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += (a[i] - b[i]) * (a[i] - b[i])
		}
		return s
	}
	nearest := func(p []float64) (int, float64) {
		best, bd := 0, math.Inf(1)
		for c, ctr := range centres {
			if d := dist(p, ctr); d < bd {
				best, bd = c, d
			}
		}
		return best, bd
	}
	for len(centres) < k {
		weights := make([]float64, len(points))
		var total float64
		for i, p := range points {
			_, weights[i] = nearest(p)
			total += weights[i]
		}
		pick, target := len(points)-1, rng.Float64()*total
		for i, w := range weights {
			if target -= w; target <= 0 {
				pick = i
				break
			}
		}
		centres = append(centres, append([]float64(nil), points[pick]...))
	}
	labels := make([]int, len(points))
	for range iterations {
		for i, p := range points {
			labels[i], _ = nearest(p)
		}
		sums, counts := make([][]float64, k), make([]int, k)
		for c := range sums {
			sums[c] = make([]float64, len(points[0]))
		}
		for i, p := range points {
			counts[labels[i]]++
			for j, v := range p {
				sums[labels[i]][j] += v
			}
		}
		for c := range centres {
			if counts[c] == 0 {
				continue
			}
			for j := range centres[c] {
				centres[c][j] = sums[c][j] / float64(counts[c])
			}
		}
	}
	for i, p := range points {
		labels[i], _ = nearest(p)
	}
	return labels
}

// forecastError is solver s's summed squared error over the samples' skipped steps on the schedule:
// full steps are the first warmup and then every interval-th.
func forecastError(s hycaSolver, samples [][]float64, warmup, interval int) float64 {
	var sum float64
	for _, x := range samples {
		var at []int // full steps so far, newest first
		for step, v := range x {
			if step < warmup || (step-warmup)%interval == 0 {
				at = append([]int{step}, at...)
				continue
			}
			have := min(3, len(at))
			h1, h2 := 1.0, 1.0
			if have > 1 {
				h1 = float64(at[0] - at[1])
			}
			if have > 2 {
				h2 = float64(at[1] - at[2])
			}
			c := s.coefficients(float64(step-at[0]), h1, h2, have)
			var pred float64
			for j := range have {
				pred += c[j] * x[at[j]]
			}
			sum += (pred - v) * (pred - v)
		}
	}
	return sum
}

// DescribeHyca counts a profile's channels per solver.
func DescribeHyca(profile []float64) string {
	counts := make([]int, numSolvers)
	for _, v := range profile {
		if v >= 0 && int(v) < int(numSolvers) {
			counts[int(v)]++
		}
	}
	out := ""
	for s, n := range counts {
		if n > 0 {
			out += fmt.Sprintf(" %s %d", hycaSolver(s), n)
		}
	}
	return "channels per solver:" + out
}
