package model_test

import (
	"context"
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// One Euler step from known noise exposes the velocity the sampler used: v = (x₁ − x₀)/Δ. Guidance rescale
// φ = 1 gives the guided velocity's direction with the conditional one's spread; φ = 0.5 the midpoint.
func TestGuidanceRescale(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
		noise := wave(len(prompts)*per, 0.37, 1.3)
		velocity := func(guidance, phi float64) []float64 {
			t.Helper()
			x := oneStep(t, m, model.SampleRequest{Prompts: prompts, Guidance: guidance, GuidanceRescale: phi, Noise: noise})
			for i := range x {
				x[i] = float64(noise[i]) - x[i] // Δ = −1 for one step
			}
			return x
		}
		cond, guided, rescaled, half := velocity(1, 0), velocity(4, 0), velocity(4, 1), velocity(4, 0.5)
		for img := range prompts {
			span := func(v []float64) []float64 { return v[img*per : (img+1)*per] }
			if got, want := std(span(rescaled)), std(span(cond)); math.Abs(got-want) > 1e-3*want {
				t.Errorf("image %d: φ = 1 gives spread %.5f, want the conditional %.5f", img, got, want)
			}
			if std(span(guided)) == std(span(cond)) {
				t.Errorf("image %d: guidance did not change the spread; the test cannot tell rescale apart", img)
			}
			k := std(span(cond)) / std(span(guided))
			for i, g := range span(guided) {
				r, h := span(rescaled)[i], span(half)[i]
				if math.Abs(r-k*g) > 1e-4 || math.Abs(h-(0.5*r+0.5*g)) > 1e-4 {
					t.Fatalf("image %d pixel %d: guided %.5f, φ=1 %.5f (want %.5f), φ=0.5 %.5f (want %.5f)", img, i, g, r, k*g, h, 0.5*r+0.5*g)
				}
			}
		}
		return nil
	})
}

func std(v []float64) float64 {
	var mean, sq float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		sq += (x - mean) * (x - mean)
	}
	return math.Sqrt(sq / float64(len(v)))
}

// A guidance interval guides only the steps whose time lies in (lo, hi]; elsewhere the step is the
// conditional one, exactly as with guidance off.
func TestGuidanceInterval(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		sample := func(guidance float64, iv model.Interval) []float32 {
			t.Helper()
			res, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Steps: 6,
				Seed: 3, Guidance: guidance, Experimental: model.Experimental{GuidanceInterval: iv}})
			if err != nil {
				t.Fatal(err)
			}
			return res.Pixels
		}
		guided, unguided := sample(4, model.Interval{}), sample(1, model.Interval{})
		if maxDiff(guided, unguided) < 1e-4 {
			t.Fatal("guidance did not change the samples; the test cannot tell intervals apart")
		}
		// 6 steps sit at t = 1, 5/6, …, 1/6.
		for _, tc := range []struct {
			name string
			iv   model.Interval
			want []float32
		}{
			{"every step", model.Interval{Lo: 0, Hi: 1}, guided},
			{"no step", model.Interval{Lo: 0, Hi: 0.1}, unguided},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if d := maxDiff(sample(4, tc.iv), tc.want); d > 1e-6 {
					t.Errorf("differs by %g", d)
				}
			})
		}
		partial := sample(4, model.Interval{Lo: 0.2, Hi: 0.8})
		if maxDiff(partial, guided) < 1e-4 || maxDiff(partial, unguided) < 1e-4 {
			t.Error("guiding some of the steps matched guiding all or none of them")
		}
		for _, bad := range []model.Interval{{Lo: 0.5, Hi: 0.5}, {Lo: -0.1, Hi: 0.5}, {Lo: 0.2, Hi: 1.5}, {Lo: math.NaN(), Hi: 1}} {
			if _, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"dog"}, Steps: 2, Guidance: 4, Experimental: model.Experimental{GuidanceInterval: bad}}); err == nil {
				t.Errorf("interval %v was accepted", bad)
			}
		}
		return nil
	})
}

// One Euler step from t = 1 lands on the step's clean-image prediction x0 = x − v. Clean-image
// renormalisation φ = 1 moves the guided x0 to the conditional x0's per-image mean and spread (an affine
// map of the guided one); φ = 0.5 is the midpoint.
func TestCleanRenorm(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
		noise := wave(len(prompts)*per, 0.29, 1.1)
		clean := func(guidance, phi float64) []float64 {
			t.Helper()
			return oneStep(t, m, model.SampleRequest{Prompts: prompts, Guidance: guidance, CleanRenorm: phi, Noise: noise})
		}
		cond, guided, renormed, half := clean(1, 0), clean(4, 0), clean(4, 1), clean(4, 0.5)
		for img := range prompts {
			span := func(v []float64) []float64 { return v[img*per : (img+1)*per] }
			mc, mg := clsMean(span(cond)), clsMean(span(guided))
			if std(span(guided)) == std(span(cond)) {
				t.Fatalf("image %d: guidance did not change the spread; the test cannot tell renormalisation apart", img)
			}
			k := std(span(cond)) / std(span(guided))
			for i, g := range span(guided) {
				r, h := span(renormed)[i], span(half)[i]
				want := (g-mg)*k + mc
				if math.Abs(r-want) > 1e-4 || math.Abs(h-(0.5*want+0.5*g)) > 1e-4 {
					t.Fatalf("image %d pixel %d: guided %.5f, φ=1 %.5f (want %.5f), φ=0.5 %.5f (want %.5f)", img, i, g, r, want, h, 0.5*want+0.5*g)
				}
			}
			if math.Abs(clsMean(span(renormed))-mc) > 1e-4 || math.Abs(std(span(renormed))-std(span(cond))) > 1e-4 {
				t.Errorf("image %d: φ = 1 gives mean %.5f sd %.5f, want the conditional %.5f %.5f", img,
					clsMean(span(renormed)), std(span(renormed)), mc, std(span(cond)))
			}
		}
		if _, err := m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Steps: 1, Guidance: 4, CleanRenorm: 1.5, Noise: noise}); err == nil {
			t.Error("φ = 1.5 was accepted")
		}
		return nil
	})
}

// wave is deterministic stand-in noise: amp·sin(freq·i).
func wave(n int, freq, amp float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(amp * math.Sin(freq*float64(i)))
	}
	return out
}

// oneStep samples req in one Euler step (t = 1 → 0) and returns the pixels.
func oneStep(t *testing.T, m *model.DiT, req model.SampleRequest) []float64 {
	t.Helper()
	req.Steps = 1
	res, err := m.Sample(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(res.Pixels))
	for i, p := range res.Pixels {
		out[i] = float64(p)
	}
	return out
}
