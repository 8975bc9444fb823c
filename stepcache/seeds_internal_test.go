package stepcache

import (
	"slices"

	"github.com/cachetlab/cachet/model"
	"math"
	"math/rand/v2"
	"testing"
)

func TestHycaSolversForecastPolynomialsExactly(t *testing.T) {
	// Full values at steps 2, 5, 6 (newest last); forecast step 8.
	at := []float64{6, 5, 2}
	tests := []struct {
		solver hycaSolver
		f      func(float64) float64
	}{
		{solverReuse, func(float64) float64 { return 3 }},
		{solverTaylor1, func(s float64) float64 { return 2*s - 1 }},
		{solverAB2, func(s float64) float64 { return -0.5*s + 4 }},
		{solverRK2, func(s float64) float64 { return 0.25 * s }},
		{solverTaylor2, func(s float64) float64 { return 0.5*s*s - s + 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.solver.String(), func(t *testing.T) {
			c := tc.solver.coefficients(8-at[0], at[0]-at[1], at[1]-at[2], 3)
			if sum := c[0] + c[1] + c[2]; math.Abs(sum-1) > 1e-12 {
				t.Fatalf("coefficients %v sum to %v", c, sum)
			}
			got := c[0]*tc.f(at[0]) + c[1]*tc.f(at[1]) + c[2]*tc.f(at[2])
			want := tc.f(8)
			if tc.solver == solverTaylor2 {
				// Finite differences on uneven gaps: exact for lines, close for the parabola.
				if math.Abs(got-want) > 2.5 {
					t.Fatalf("forecast %v, want about %v", got, want)
				}
				return
			}
			if math.Abs(got-want) > 1e-9 {
				t.Fatalf("forecast %v, want %v", got, want)
			}
		})
	}
	if c := solverTaylor2.coefficients(2, 1, 1, 1); c != [3]float64{1, 0, 0} {
		t.Errorf("with one full value every solver reuses it, got %v", c)
	}
}

func TestBACSchedulerIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 20 {
		steps, k := 4+rng.IntN(5), 1+rng.IntN(4)
		sim := make([]float64, steps*steps)
		for i := range sim {
			sim[i] = rng.Float64()
		}
		score := func(up []bool) float64 {
			var s float64
			last := 0
			for t := range steps {
				if up[t] {
					last = t
				}
				s += sim[last*steps+t]
			}
			return s
		}
		got := scheduleUpdates(sim, steps, k)
		count := 0
		for _, u := range got {
			if u {
				count++
			}
		}
		if !got[0] || count != min(k, steps) {
			t.Fatalf("trial %d: %v is not %d updates from step 0", trial, got, k)
		}
		best := math.Inf(-1)
		for mask := range 1 << (steps - 1) { // step 0 always updates
			up := []bool{true}
			n := 1
			for t := 1; t < steps; t++ {
				on := mask&(1<<(t-1)) != 0
				up = append(up, on)
				if on {
					n++
				}
			}
			if n == min(k, steps) {
				best = max(best, score(up))
			}
		}
		if s := score(got); math.Abs(s-best) > 1e-9 {
			t.Fatalf("trial %d: schedule %v scores %v, the best %v", trial, got, s, best)
		}
	}
}

func TestAsymRnRReductionRestoresEveryToken(t *testing.T) {
	const grid, tokens, width = 4, 16, 3
	rng := rand.New(rand.NewPCG(5, 6))
	dst := destinations(rng, grid, tokens)
	if len(dst) != 4 {
		t.Fatalf("destinations %v: want one per 2×2 cell", dst)
	}
	x := make([]float32, tokens*width)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	srcs, nearest, dist := matchSources(x, width, tokens, dst)
	order := ranked(len(srcs), func(i int) float64 { return -dist[i] })
	for _, ratio := range []float64{0, 0.25, 0.5, 0.75} {
		kept, restore := reduceTokens(srcs, nearest, order, dst, tokens, ratio)
		if want := tokens - int(math.Floor(tokens*ratio)); len(kept) != want {
			t.Fatalf("ratio %v: kept %d tokens, want %d", ratio, len(kept), want)
		}
		for tok, r := range restore {
			src := int(kept[r])
			if src != tok && !contains(dst, src) {
				t.Fatalf("ratio %v: token %d restored from %d, neither itself nor a destination", ratio, tok, src)
			}
		}
		for i, k := range order[:int(math.Floor(tokens*ratio))] {
			if i > 0 && dist[k] < dist[order[i-1]] {
				t.Fatalf("dropped out of order")
			}
		}
	}
}

func contains(xs []int, v int) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

func TestERTACacheTimestepAdjustmentEndsAtZero(t *testing.T) {
	c := &ertaCache{adjust: true, euler: true}
	deltas := []float64{-0.3, -0.25, -0.2, -0.15, -0.1}
	c.deltas = deltas
	for _, d := range deltas {
		c.total += d
	}
	phi := []float64{1, 0.6, 1, 0.8, 1}
	var covered float64
	for i := range deltas {
		covered += c.stepFactor(i, phi[i]) * deltas[i]
	}
	if math.Abs(covered-c.total) > 1e-12 {
		t.Fatalf("the adjusted steps cover %v, the schedule %v", covered, c.total)
	}
	// Residual changes between every two of 3 steps; at threshold 0.3 step 1 reuses step 0's residual.
	rec := ertaProfile{times: []float64{1000, 600, 300}, rel: []float64{0, 0.2, 0.5, 0, 0, 0.4, 0, 0, 0},
		phi: []float64{1, 0.5, 1}, a: []float64{0, 0.1, 0}, b: []float64{0, -0.2, 0}}
	merged, err := MergeErtaProfile(nil, rec.record())
	if err != nil {
		t.Fatal(err)
	}
	other := ertaProfile{times: []float64{1000, 500}, rel: []float64{0, 0.1, 0, 0}, phi: []float64{1, 0.9}, a: []float64{0, 0}, b: []float64{0, 0}}
	if merged, err = MergeErtaProfile(merged, other.record()); err != nil {
		t.Fatal(err)
	}
	got, err := ertaProfiles(merged)
	if err != nil || len(got) != 2 || got[3].phi[1] != 0.5 || got[3].b[1] != -0.2 || got[2].rel[1] != 0.1 {
		t.Fatalf("profiles %+v, %v", got, err)
	}
	for _, tc := range []struct {
		threshold float64
		want      []bool
	}{{0.1, []bool{false, false, false}}, {0.3, []bool{false, true, false}}} {
		if p, ok := onSchedule(got, model.Schedule{Steps: 3, Times: []float64{1000, 600, 300}}, tc.threshold); !ok || !slices.Equal(p.reuse, tc.want) {
			t.Errorf("threshold %v: reuse %v, want %v", tc.threshold, p.reuse, tc.want)
		}
	}
	// A schedule not profiled takes, step by step, the nearest step count's step nearest in time.
	p, ok := onSchedule(got, model.Schedule{Steps: 5, Times: []float64{990, 650, 580, 320, 100}}, 0.3)
	if !ok || !slices.Equal(p.reuse, []bool{false, true, true, false, false}) || p.phi[1] != 0.5 || p.a[3] != 0 {
		t.Fatalf("resampled profile %+v", p)
	}
}

func TestProfiledScheduleIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 20 {
		n := 3 + rng.IntN(6)
		computed := 2 + rng.IntN(n-1)
		p := ertaProfile{times: make([]float64, n), rel: make([]float64, n*n)}
		deltas := make([]float64, n)
		for i := range n {
			deltas[i] = -rng.Float64()
			for k := range i {
				p.rel[k*n+i] = rng.Float64()
			}
		}
		errorOf := func(reuse []bool) float64 {
			var e float64
			kept := 0
			for i := range n {
				if reuse[i] {
					e += p.rel[kept*n+i] * -deltas[i]
				} else {
					kept = i
				}
			}
			return e
		}
		got := p.optimal(computed, deltas)
		if got[0] || got[n-1] || n-countTrue(got) != computed {
			t.Fatalf("trial %d: %v does not compute the first, the last and %d steps", trial, got, computed)
		}
		best := math.Inf(1)
		for mask := range 1 << (n - 2) { // the middle steps' reuse
			reuse := make([]bool, n)
			for i := 1; i < n-1; i++ {
				reuse[i] = mask&(1<<(i-1)) != 0
			}
			if n-countTrue(reuse) == computed {
				best = min(best, errorOf(reuse))
			}
		}
		if e := errorOf(got); math.Abs(e-best) > 1e-9 {
			t.Fatalf("trial %d: %v has error %v, the least %v", trial, got, e, best)
		}
	}
}

func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}
