package model_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet/model"
)

// scheduleProbe is a pass-through step cache that records the schedule the sampler built.
type scheduleProbe struct{ got model.Schedule }

func (p *scheduleProbe) Begin(s model.Schedule) error { p.got = s; return nil }
func (p *scheduleProbe) Eval(_ int, eval func(h *model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(nil)
}
func (p *scheduleProbe) End() {}

// A time shift s warps the even times by s·t/(1+(s−1)·t): it keeps t = 1 first, lands on 0, and the steps
// still add up to the whole trajectory.
func TestTimeShiftSchedule(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		for _, tc := range []struct {
			shift float64
			want  []float64 // times t, 1 = noise
		}{
			{0, []float64{1, 0.75, 0.5, 0.25}},
			{1, []float64{1, 0.75, 0.5, 0.25}},
			{3, []float64{1, 0.9, 0.75, 0.5}},
			{1.0 / 3, []float64{1, 0.5, 0.25, 0.1}},
		} {
			p := &scheduleProbe{}
			if _, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a cat"}, Steps: 4, Cache: p, Experimental: model.Experimental{TimeShift: tc.shift}}); err != nil {
				t.Fatal(err)
			}
			sum := 0.0
			for i, want := range tc.want {
				if got := p.got.Times[i] / 1000; math.Abs(got-want) > 1e-9 {
					t.Errorf("shift %v: t[%d] = %v, want %v", tc.shift, i, got, want)
				}
				sum += p.got.Deltas[i]
			}
			if math.Abs(sum+1) > 1e-9 {
				t.Errorf("shift %v: the steps add up to %v, want −1", tc.shift, sum)
			}
		}
		for _, bad := range []float64{-1, 21, math.NaN()} {
			_, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a cat"}, Steps: 4, Experimental: model.Experimental{TimeShift: bad}})
			if err == nil || !strings.Contains(err.Error(), "time shift") {
				t.Errorf("shift %v: got %v, want a time-shift error", bad, err)
			}
		}
		return nil
	})
}

// stepVelocity runs one Euler step from fixed noise; at t = 1 with Δ = −1 the step exposes the velocity
// the sampler used: v = noise − x.
func stepVelocity(t *testing.T, m *model.DiT, req model.SampleRequest) ([]float64, []float32) {
	t.Helper()
	per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
	noise := make([]float32, len(req.Prompts)*per)
	for i := range noise {
		noise[i] = float32(math.Sin(float64(i)*0.37)) * 1.3
	}
	req.Steps, req.Noise = 1, noise
	res, err := m.Sample(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, len(noise))
	for i := range v {
		v[i] = float64(noise[i] - res.Pixels[i])
	}
	return v, noise
}

// Guidance projection removes the share of the guidance term parallel to the predicted clean image
// x0 = x − t·v_c: at share 1 the guided velocity's change is orthogonal to x0, at 0.5 it is half-way.
func TestGuidanceProjection(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
		cond, noise := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 1})
		plain, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 4})
		full, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 4, Experimental: model.Experimental{GuidanceProjection: 1}})
		half, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 4, Experimental: model.Experimental{GuidanceProjection: 0.5}})
		for img := range prompts {
			var gx, xx float64
			x0 := make([]float64, per)
			for k := range per {
				i := img*per + k
				x0[k] = float64(noise[i]) - cond[i]
				gx += (plain[i] - cond[i]) / 3 * x0[k]
				xx += x0[k] * x0[k]
			}
			if math.Abs(gx) < 1e-3*math.Sqrt(xx) {
				return fmt.Errorf("image %d: the guidance term is already orthogonal to x0; the test cannot tell", img)
			}
			for k := range per {
				i := img*per + k
				want := plain[i] - 3*gx/xx*x0[k]
				if math.Abs(full[i]-want) > 1e-4 || math.Abs(half[i]-(plain[i]+want)/2) > 1e-4 {
					return fmt.Errorf("image %d pixel %d: share 1 %.5f (want %.5f), share 0.5 %.5f (want %.5f)", img, k, full[i], want, half[i], (plain[i]+want)/2)
				}
			}
		}
		return nil
	})
}

// Autoguidance extrapolates from the guide model's conditional velocity to the model's:
// v = v_guide + w·(v − v_guide); with classifier-free guidance as well, the two terms add.
func TestAutoguidance(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		guide, err := model.New(textConfig(), gotch.CPU) // freshly initialised: a different, weaker model
		if err != nil {
			return err
		}
		defer guide.Close()
		prompts := []string{"a red cat", "dog"}
		cond, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 1})
		weak, _ := stepVelocity(t, guide, model.SampleRequest{Prompts: prompts, Guidance: 1})
		auto, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Experimental: model.Experimental{Guide: guide, GuideScale: 3}})
		cfg, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 2})
		both, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 2, Experimental: model.Experimental{Guide: guide, GuideScale: 3}})
		for i := range auto {
			if want := weak[i] + 3*(cond[i]-weak[i]); math.Abs(auto[i]-want) > 1e-4 {
				return fmt.Errorf("value %d: %.5f, want %.5f", i, auto[i], want)
			}
			if want := cfg[i] + 2*(cond[i]-weak[i]); math.Abs(both[i]-want) > 1e-4 {
				return fmt.Errorf("value %d with both guidances: %.5f, want %.5f", i, both[i], want)
			}
		}

		other := textConfig()
		other.ImageSize = 16
		small, err := model.New(other, gotch.CPU)
		if err != nil {
			return err
		}
		defer small.Close()
		for _, tc := range []struct {
			name  string
			req   model.SampleRequest
			error string
		}{
			{"itself", model.SampleRequest{Experimental: model.Experimental{Guide: m}}, "weaker model"},
			{"other images", model.SampleRequest{Experimental: model.Experimental{Guide: small}}, "draws 16×16×1"},
			{"with a subject", model.SampleRequest{Inject: &model.Injection{}, Experimental: model.Experimental{Guide: guide}}, "adapters"},
			{"no guide", model.SampleRequest{}, "needs a guide model"},
			{"scale", model.SampleRequest{Experimental: model.Experimental{Guide: guide, GuideScale: -1}}, "between 0 and 50"},
		} { // on the worker's thread, so no t.Run
			tc.req.Prompts, tc.req.Steps = prompts, 2
			if tc.req.GuideScale == 0 {
				tc.req.GuideScale = 3
			}
			if _, err := m.Sample(context.Background(), tc.req); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.error)
			}
		}
		return nil
	})
}

// Negative prompts add their own term: v = CFG(c, u) + s·(c − c_negative), where c_negative is the
// model's conditional velocity for the negative prompt; alone (guidance 1) it is c + s·(c − c_negative).
func TestNegativePrompts(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts, negatives := []string{"a red cat", "dog"}, []string{"a blue cat", "a cat"}
		cond, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 1})
		neg, _ := stepVelocity(t, m, model.SampleRequest{Prompts: negatives, Guidance: 1})
		cfg, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 3})
		alone, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, NegativePrompts: negatives, NegativeGuidance: 2})
		both, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 3, NegativePrompts: negatives, NegativeGuidance: 0.5})
		moved := 0.0
		for i := range cond {
			if want := cond[i] + 2*(cond[i]-neg[i]); math.Abs(alone[i]-want) > 1e-4 {
				return fmt.Errorf("value %d, negative alone: %.5f, want %.5f", i, alone[i], want)
			}
			if want := cfg[i] + 0.5*(cond[i]-neg[i]); math.Abs(both[i]-want) > 1e-4 {
				return fmt.Errorf("value %d, with guidance: %.5f, want %.5f", i, both[i], want)
			}
			moved = max(moved, math.Abs(cond[i]-neg[i]))
		}
		if moved < 1e-3 {
			return fmt.Errorf("the negative prompts do not change the velocity (%.2g); the test cannot tell", moved)
		}

		for _, tc := range []struct {
			name  string
			req   model.SampleRequest
			error string
		}{
			{"one short", model.SampleRequest{NegativePrompts: negatives[:1], NegativeGuidance: 1}, "2 prompts"},
			{"no scale", model.SampleRequest{NegativeGuidance: 1}, "needs negative prompts"},
			{"scale", model.SampleRequest{NegativePrompts: negatives, NegativeGuidance: -1}, "between 0 and 50"},
			{"unknown word", model.SampleRequest{NegativePrompts: []string{"a cat", "a horse"}, NegativeGuidance: 1}, `unknown word "horse"`},
			{"with a subject", model.SampleRequest{NegativePrompts: negatives, NegativeGuidance: 1, Inject: &model.Injection{}}, "adapters"},
		} { // on the worker's thread, so no t.Run
			tc.req.Prompts, tc.req.Steps = prompts, 2
			if _, err := m.Sample(context.Background(), tc.req); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.error)
			}
		}
		return nil
	})
}

// Stochastic sampling re-noises with seeded noise: the same seed gives the same images, η > 0 gives other
// images than the Euler sampler, and the last step (to t = 0) adds no noise, so one step equals Euler's.
func TestStochasticity(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		sampleIn := func(steps int, eta float64, iv model.Interval) ([]float32, error) {
			res, err := m.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: 5, Steps: steps, Guidance: 2, Experimental: model.Experimental{Stochasticity: eta, StochasticInterval: iv}})
			if err != nil {
				return nil, err
			}
			return res.Pixels, nil
		}
		sample := func(steps int, eta float64) ([]float32, error) { return sampleIn(steps, eta, model.Interval{}) }
		var out [5][]float32
		for k, run := range []struct {
			steps int
			eta   float64
		}{{4, 0}, {4, 0.5}, {4, 0.5}, {1, 0}, {1, 0.9}} {
			var err error
			if out[k], err = sample(run.steps, run.eta); err != nil {
				return err
			}
		}
		euler, a, b, oneEuler, oneStochastic := out[0], out[1], out[2], out[3], out[4]
		differs := 0.0
		for i := range a {
			if a[i] != b[i] {
				return fmt.Errorf("value %d: %v, then %v with the same seed", i, a[i], b[i])
			}
			if oneEuler[i] != oneStochastic[i] {
				return fmt.Errorf("value %d: one step is %v stochastic, %v Euler", i, oneStochastic[i], oneEuler[i])
			}
			differs = max(differs, math.Abs(float64(a[i]-euler[i])))
		}
		if differs < 1e-2 {
			return fmt.Errorf("η 0.5 leaves the images as Euler draws them (max change %.2g)", differs)
		}
		// The four steps start at t = 1, 0.75, 0.5, 0.25: (0, 0.2] holds none of them, (0, 1] all.
		none, err := sampleIn(4, 0.5, model.Interval{Lo: 0, Hi: 0.2})
		if err != nil {
			return err
		}
		all, err := sampleIn(4, 0.5, model.Interval{Lo: 0, Hi: 1})
		if err != nil {
			return err
		}
		for i := range a {
			if none[i] != euler[i] || all[i] != a[i] {
				return fmt.Errorf("value %d: interval (0, 0.2] gives %v (Euler %v), (0, 1] %v (every step %v)", i, none[i], euler[i], all[i], a[i])
			}
		}
		if _, err := sampleIn(4, 0.5, model.Interval{Lo: 0.6, Hi: 0.3}); err == nil || !strings.Contains(err.Error(), "stochastic_interval: ") {
			t.Errorf("interval (0.6, 0.3]: got %v, want a stochastic-interval error", err)
		}
		for _, bad := range []float64{-0.1, 1, math.NaN()} {
			if _, err := sample(2, bad); err == nil || !strings.Contains(err.Error(), "stochasticity") {
				t.Errorf("η %v: got %v, want a stochasticity error", bad, err)
			}
		}
		return nil
	})
}

// CFG-Zero*: with the optimized scale the step takes s*·u + w·(c − s*·u), s* = ⟨c, u⟩ / ‖u‖² per image;
// a zero-init step keeps x, so two steps with the first zeroed are one Euler step of −½ from t = ½.
func TestCFGZeroStar(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
		evaluate := func(x []float32, time float64) (c, u []float32, err error) {
			ts := []float64{time, time, time, time}
			out, err := m.Evaluate(model.EvalInput{X: append(append([]float32{}, x...), x...), T: ts,
				Prompts: append(prompts, prompts...), Null: []bool{false, false, true, true}}, nil)
			if err != nil {
				return nil, nil, err
			}
			return out[:len(x)], out[len(x):], nil
		}
		opt, noise := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: 3, Experimental: model.Experimental{OptimizedScale: true}})
		c, u, err := evaluate(noise, 1000)
		if err != nil {
			return err
		}
		for img := range prompts {
			var cu, uu float64
			for k := range per {
				i := img*per + k
				cu += float64(c[i]) * float64(u[i])
				uu += float64(u[i]) * float64(u[i])
			}
			s := cu / uu
			for k := range per {
				i := img*per + k
				if want := s*float64(u[i]) + 3*(float64(c[i])-s*float64(u[i])); math.Abs(opt[i]-want) > 1e-4 {
					return fmt.Errorf("image %d value %d: %.5f, want %.5f (s* %.3f)", img, k, opt[i], want, s)
				}
			}
		}

		res, err := m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Guidance: 3, Steps: 2, Noise: noise, Experimental: model.Experimental{ZeroInitSteps: 1}})
		if err != nil {
			return err
		}
		c, u, err = evaluate(noise, 500)
		if err != nil {
			return err
		}
		for i := range noise {
			v := float64(u[i]) + 3*float64(c[i]-u[i])
			if want := float64(noise[i]) - 0.5*v; math.Abs(float64(res.Pixels[i])-want) > 1e-4 {
				return fmt.Errorf("value %d after a zeroed and an Euler step: %.5f, want %.5f", i, res.Pixels[i], want)
			}
		}
		for _, bad := range []int{-1, 2} {
			_, err := m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Steps: 2, Experimental: model.Experimental{ZeroInitSteps: bad}})
			if err == nil || !strings.Contains(err.Error(), "zero-init") {
				t.Errorf("zero-init %d of 2 steps: got %v, want a zero-init error", bad, err)
			}
		}
		return nil
	})
}

// Perturbed-attention guidance adds s·(c − c_perturbed), linear in s and on top of classifier-free
// guidance. Over a single token attention is already the identity, so there the perturbed pass equals the
// conditional one and the term vanishes: the identity path computes what attention would.
func TestPerturbedAttentionGuidance(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		pag := func(g, s float64) []float64 {
			v, _ := stepVelocity(t, m, model.SampleRequest{Prompts: prompts, Guidance: g, Experimental: model.Experimental{PerturbedGuidance: s, PerturbedBlocks: []int{0, 1}}})
			return v
		}
		cond, cfg, one, two, both := pag(1, 0), pag(3, 0), pag(1, 1), pag(1, 2), pag(3, 1)
		moved := 0.0
		for i := range cond {
			if want := cond[i] + 2*(one[i]-cond[i]); math.Abs(two[i]-want) > 1e-4 {
				return fmt.Errorf("value %d, scale 2: %.5f, want %.5f", i, two[i], want)
			}
			if want := cfg[i] + (one[i] - cond[i]); math.Abs(both[i]-want) > 1e-4 {
				return fmt.Errorf("value %d, with guidance: %.5f, want %.5f", i, both[i], want)
			}
			moved = max(moved, math.Abs(one[i]-cond[i]))
		}
		if moved < 1e-3 {
			return fmt.Errorf("perturbing attention does not change the velocity (%.2g); the test cannot tell", moved)
		}

		single := textConfig()
		single.ImageSize = single.Patch
		tiny, err := model.New(single, gotch.CPU)
		if err != nil {
			return err
		}
		defer tiny.Close()
		perturb(t, tiny)
		plain, _ := stepVelocity(t, tiny, model.SampleRequest{Prompts: prompts, Guidance: 1})
		perturbed, _ := stepVelocity(t, tiny, model.SampleRequest{Prompts: prompts, Guidance: 1, Experimental: model.Experimental{PerturbedGuidance: 5, PerturbedBlocks: []int{0, 1}}})
		for i := range plain {
			if math.Abs(perturbed[i]-plain[i]) > 1e-4 {
				return fmt.Errorf("one token, value %d: %.5f with the identity map, %.5f with attention", i, perturbed[i], plain[i])
			}
		}

		for _, tc := range []struct {
			name  string
			req   model.SampleRequest
			error string
		}{
			{"scale", model.SampleRequest{Experimental: model.Experimental{PerturbedGuidance: -1, PerturbedBlocks: []int{0}}}, "between 0 and 50"},
			{"no blocks", model.SampleRequest{Experimental: model.Experimental{PerturbedGuidance: 2}}, "needs the blocks"},
			{"block outside", model.SampleRequest{Experimental: model.Experimental{PerturbedGuidance: 2, PerturbedBlocks: []int{2}}}, "block 2 outside 0…1"},
			{"with a subject", model.SampleRequest{Inject: &model.Injection{}, Experimental: model.Experimental{PerturbedGuidance: 2, PerturbedBlocks: []int{0}}}, "adapters"},
		} { // on the worker's thread, so no t.Run
			tc.req.Prompts, tc.req.Steps = prompts, 2
			if _, err := m.Sample(context.Background(), tc.req); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.error)
			}
		}
		return nil
	})
}
