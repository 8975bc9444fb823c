package stepcache_test

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		cfg  stepcache.Config
		want string // "" = valid
	}{
		{stepcache.Config{}, ""},
		{stepcache.Config{Name: "TaylorSeer", Params: map[string]float64{"interval": 3, "order": 2}}, ""},
		{stepcache.Config{Name: "magic"}, `unknown cache policy "magic"; policies: abcache, asymrnr, bac, bwcache, `},
		{stepcache.Config{Name: "fora", Params: map[string]float64{"n": 3}}, `cache policy fora has no parameter "n"; it takes: fora: interval=3 (1…50)`},
		{stepcache.Config{Name: "fora", Params: map[string]float64{"interval": 0}}, "interval must be an integer in 1…50 (got 0)"},
		{stepcache.Config{Name: "taylorseer", Params: map[string]float64{"order": 2.5}}, "order must be an integer in 0…6"},
		{stepcache.Config{Name: "fbcache", Params: map[string]float64{"threshold": math.NaN()}}, "threshold must be a number in 0…1"},
	}
	for _, tc := range tests {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// scripted drives a policy over a trajectory: one block, and "computing" a sublayer returns f(step).
func scripted(t *testing.T, p stepcache.Policy, steps int, f func(step int) float32) (got []float32, computed []bool) {
	t.Helper()
	if err := p.Begin(model.Schedule{Steps: steps}); err != nil {
		t.Fatal(err)
	}
	defer p.End()
	for i := range steps {
		ran := false
		out, err := p.Eval(i, func(h *model.Hooks) (*model.Feature, error) {
			return h.Sublayer(0, model.SublayerMLP, func(*model.Tokens) (*model.Feature, error) {
				ran = true
				return model.NewFeature([]float32{f(i), 2 * f(i)}, []int64{2}, model.CPU)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := out.Values()
		if err != nil {
			t.Fatal(err)
		}
		out.Drop()
		got, computed = append(got, v[0]), append(computed, ran)
	}
	return got, computed
}

// taylorReference is TaylorSeer's forecast computed on scalars, independently of the policy: backward
// differences over the full steps' values, divided by the step gap, summed as a Taylor series.
func taylorReference(f func(float64) float64, fullSteps []int, order, step int) float64 {
	var d []float64
	last := 0
	for _, s := range fullSteps {
		if s > step {
			break
		}
		next := []float64{f(float64(s))}
		for i := 0; i < order && i < len(d); i++ {
			next = append(next, (next[i]-d[i])/float64(s-last))
		}
		d, last = next, s
	}
	k, out, fact := float64(step-last), 0.0, 1.0
	for i, v := range d {
		if i > 0 {
			fact *= float64(i)
		}
		out += v * math.Pow(k, float64(i)) / fact
	}
	return out
}

func TestTaylorSeerForecastsPolynomialTrajectories(t *testing.T) {
	tests := []struct {
		name  string
		order int
		f     func(float64) float64
		exact bool // a polynomial of degree ≤ 1 is forecast exactly
	}{
		{"linear, order 1", 1, func(s float64) float64 { return 3 - 0.5*s }, true},
		{"linear, order 3", 3, func(s float64) float64 { return 3 - 0.5*s }, true},
		{"quadratic, order 2", 2, func(s float64) float64 { return 1 + 0.2*s - 0.03*s*s }, false},
		{"cubic, order 3", 3, func(s float64) float64 { return 0.5 - 0.1*s + 0.02*s*s + 0.001*s*s*s }, false},
	}
	full := []int{0, 3, 6, 9, 12, 15, 18, 21}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := stepcache.New(stepcache.Config{Name: "taylorseer", Params: map[string]float64{"interval": 3, "order": float64(tc.order), "warmup": 0}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, computed := scripted(t, p, 24, func(s int) float32 { return float32(tc.f(float64(s))) })
			for s := range got {
				want := taylorReference(tc.f, full, tc.order, s)
				if math.Abs(float64(got[s])-want) > 1e-4*max(1, math.Abs(want)) {
					t.Errorf("step %d (computed %v): %v, want %v", s, computed[s], got[s], want)
				}
				if tc.exact && s >= 3 && math.Abs(float64(got[s])-tc.f(float64(s))) > 1e-4 {
					t.Errorf("step %d: %v, want the trajectory's %v", s, got[s], tc.f(float64(s)))
				}
			}
			// Steps 1–2 follow the first full step, with no derivative yet: a plain reuse.
			if st := p.Stats(); st.Computed != 8 || st.Reused != 2 || st.Forecast != 14 {
				t.Errorf("stats %+v: want 8 computed, 2 reused, 14 forecast", st)
			}
		})
	}
}

// focaReference is FoCa's forecast on scalars: the trapezoid of the anchors' per-step slope and the
// rolling window's latest slope, damped beyond the horizon; predictions join the window.
func focaReference(f func(float64) float64, interval, horizon, steps int) []float64 {
	var out []float64
	var anchors, window []int // window: the steps whose values were computed or forecast
	for s := range steps {
		if s%interval == 0 {
			out = append(out, f(float64(s)))
			anchors, window = append(anchors, s), append(window, s)
			continue
		}
		last := anchors[len(anchors)-1]
		if len(anchors) < 2 {
			out = append(out, out[last])
			continue
		}
		prev := anchors[len(anchors)-2]
		w1, w0 := window[len(window)-1], window[len(window)-2]
		k := float64(s - last)
		slopeAnchor := (out[last] - out[prev]) / float64(last-prev)
		slopeRecent := (out[w1] - out[w0]) / float64(w1-w0)
		damp := 1.0
		if k > float64(horizon) {
			damp = float64(horizon) / k
		}
		out = append(out, out[last]+damp*k/2*(slopeAnchor+slopeRecent))
		window = append(window, s)
	}
	return out
}

func TestFoCaForecasts(t *testing.T) {
	tests := []struct {
		name     string
		interval int
		f        func(float64) float64
		exact    bool // a line within the horizon is forecast exactly
	}{
		{"linear", 3, func(s float64) float64 { return 3 - 0.5*s }, true},
		{"quadratic", 3, func(s float64) float64 { return 1 + 0.2*s - 0.03*s*s }, false},
		{"past the horizon", 6, func(s float64) float64 { return 2 + 0.1*s }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := stepcache.New(stepcache.Config{Name: "foca", Params: map[string]float64{"interval": float64(tc.interval), "warmup": 0}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, computed := scripted(t, p, 20, func(s int) float32 { return float32(tc.f(float64(s))) })
			want := focaReference(tc.f, tc.interval, 3, 20)
			for s := range got {
				if computed[s] != (s%tc.interval == 0) {
					t.Errorf("step %d computed %v", s, computed[s])
				}
				if math.Abs(float64(got[s])-want[s]) > 1e-4*max(1, math.Abs(want[s])) {
					t.Errorf("step %d: %v, want %v", s, got[s], want[s])
				}
				if tc.exact && s > tc.interval && math.Abs(float64(got[s])-tc.f(float64(s))) > 1e-4 {
					t.Errorf("step %d: %v, want the line's %v", s, got[s], tc.f(float64(s)))
				}
			}
			if tc.name == "past the horizon" && math.Abs(float64(got[11])-tc.f(11)) < 1e-3 {
				t.Errorf("step 11 is 5 steps past its anchor: the forecast should be damped, got the line's value %v", got[11])
			}
			if st := p.Stats(); st.ExtraBytes != 4*8 {
				t.Errorf("extra bytes %d, want four 2-value float32 features", st.ExtraBytes)
			}
		})
	}
}

func TestFORAReusesBetweenFullSteps(t *testing.T) {
	p, err := stepcache.New(stepcache.Config{Name: "fora", Params: map[string]float64{"interval": 4}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, computed := scripted(t, p, 10, func(s int) float32 { return float32(s) })
	for s := range got {
		last := float32(s - s%4)
		if got[s] != last || computed[s] != (s%4 == 0) {
			t.Errorf("step %d: %v (computed %v), want %v", s, got[s], computed[s], last)
		}
	}
	if st := p.Stats(); st.Computed != 3 || st.Reused != 7 || math.Abs(st.ComputeFraction-0.3) > 1e-9 {
		t.Errorf("stats %+v", st)
	}
}

// With caching disabled each policy reproduces the uncached sampler exactly.
func TestDisabledPoliciesMatchUncached(t *testing.T) {
	onRandomModel(t, 8, func(cfg model.Config, sample func(model.StepCache) []float32) error {
		want := sample(nil)
		for _, c := range []stepcache.Config{
			{Name: "none"},
			{Name: "fora", Params: map[string]float64{"interval": 1}},
			{Name: "taylorseer", Params: map[string]float64{"interval": 1}},
			{Name: "foca", Params: map[string]float64{"interval": 1}},
			{Name: "fbcache", Params: map[string]float64{"threshold": 0}},
			{Name: "dbcache", Params: map[string]float64{"threshold": 0, "fn": 1, "bn": 1}},
			{Name: "abcache", Params: map[string]float64{"interval": 1}},
			{Name: "bwcache", Params: map[string]float64{"delta": 0}},
		} {
			p, err := stepcache.New(c, cfg.Depth)
			if err != nil {
				t.Fatal(err)
			}
			got := sample(p)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: pixel %d = %v, uncached %v", c.Name, i, got[i], want[i])
				}
			}
			if st := p.Stats(); st.ComputeFraction != 1 {
				t.Errorf("%s: compute fraction %v, want 1", c.Name, st.ComputeFraction)
			}
		}
		return nil
	})
}

// A scripted block stack: block b adds (b+1)·(1 + step/100) to x. The front residual barely changes from
// step to step, so DBCache/FBCache skip the middle after warm-up and add the stored middle residual.
func TestBlockCachesSkipWhatTheyShould(t *testing.T) {
	tests := []struct {
		cfg                      stepcache.Config
		depth                    int
		wantComputed, wantReused int
	}{
		// Step k's front residual differs from the one of the last full step k0 by (k−k0)/(100+k0): with
		// threshold 0.05 the full steps are 0 and 5 (5/100 is not below it); blocks 1–3 are reused on 8 steps.
		{stepcache.Config{Name: "fbcache", Params: map[string]float64{"threshold": 0.05, "warmup": 1}}, 4, 10*1 + 2*3, 8 * 3},
		// Warm-up makes steps 0 and 1 full; then 2–6 are cached, 7 is full ((7−1)/101 ≥ 0.05), 8–9 cached.
		// Blocks 0 and 3 always run; the middle two are reused on 7 steps.
		{stepcache.Config{Name: "dbcache", Params: map[string]float64{"threshold": 0.05, "warmup": 2, "fn": 1, "bn": 1}}, 4, 10*2 + 3*2, 7 * 2},
		// Outputs change ~1 % per step: after every computed step from step 1 on, one step (10 % of 10) is
		// reused; step 9 is in the late 10 % and computes: computed 0, 1, 3, 5, 7, 9; reused 2, 4, 6, 8.
		{stepcache.Config{Name: "bwcache", Params: map[string]float64{"delta": 0.2}}, 4, 6 * 4, 4 * 4},
		// Flat ratios (γ = 1) never accumulate error, so only max_skips = 3 and the 20 % retention bind:
		// computed 0, 1 (retention), 5, 9; skipped 2–4 and 6–8.
		{stepcache.Config{Name: "magcache", Calibration: []float64{1, 1, 1}}, 4, 4 * 4, 6 * 4},
	}
	for _, tc := range tests {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			p, err := stepcache.New(tc.cfg, tc.depth)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Begin(model.Schedule{Steps: 10}); err != nil {
				t.Fatal(err)
			}
			defer p.End()
			for step := range 10 {
				x, _ := model.NewFeature([]float32{1, 1}, []int64{2}, model.CPU)
				out, err := p.Eval(step, func(h *model.Hooks) (*model.Feature, error) {
					return h.Stack(x, func(from, to int, in *model.Feature) (*model.Feature, error) {
						add := 0.0
						for b := from; b < to; b++ {
							add += float64(b+1) * (1 + float64(step)/100)
						}
						return model.Combine([]float64{1, add}, []*model.Feature{in, x}) // x = ones
					})
				})
				if err != nil {
					t.Fatal(err)
				}
				v, _ := out.Values()
				full := 1 + 10*(1+float64(step)/100)
				if math.Abs(float64(v[0])-full) > 0.05*full {
					t.Errorf("step %d: %v, want about %v", step, v[0], full)
				}
				out.Drop()
				x.Drop()
			}
			if st := p.Stats(); st.Computed != tc.wantComputed || st.Reused != tc.wantReused {
				t.Errorf("stats %+v, want %d computed and %d reused units", st, tc.wantComputed, tc.wantReused)
			}
		})
	}
}

// AB-Cache extrapolates the model output exactly for polynomial trajectories below its order.
func TestABCacheExtrapolatesPolynomials(t *testing.T) {
	for _, tc := range []struct {
		order int
		f     func(float64) float64
	}{
		{2, func(s float64) float64 { return 4 - 0.3*s }},
		{3, func(s float64) float64 { return 1 + 0.2*s - 0.05*s*s }},
	} {
		p, err := stepcache.New(stepcache.Config{Name: "abcache", Params: map[string]float64{"order": float64(tc.order), "warmup": 3, "interval": 4, "feed_predictions": 1}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Begin(model.Schedule{Steps: 12}); err != nil {
			t.Fatal(err)
		}
		for step := range 12 {
			out, err := p.Eval(step, func(*model.Hooks) (*model.Feature, error) {
				return model.NewFeature([]float32{float32(tc.f(float64(step)))}, []int64{1}, model.CPU)
			})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := out.Values()
			out.Drop()
			if want := tc.f(float64(step)); math.Abs(float64(v[0])-want) > 1e-4 {
				t.Errorf("order %d, step %d: %v, want %v", tc.order, step, v[0], want)
			}
		}
		p.End()
		if st := p.Stats(); st.Forecast != 7 || st.Computed != 5 {
			t.Errorf("order %d: stats %+v, want 5 computed (warm-up 0–2, then 4 and 8) and 7 forecast", tc.order, st)
		}
	}
}

// MagCache calibrated on the model itself and run with threshold 0 reproduces the uncached sampler; with
// a generous threshold it skips; without a calibration it refuses to start.
func TestMagCacheCalibrationAndSkipping(t *testing.T) {
	if _, err := stepcache.New(stepcache.Config{Name: "magcache"}, 3); err == nil || !strings.Contains(err.Error(), "cachet calibrate magcache") {
		t.Fatalf("magcache without calibration: %v", err)
	}
	onRandomModel(t, 10, func(cfg model.Config, sample func(model.StepCache) []float32) error {
		rec := stepcache.NewMagRecorder(cfg.Depth)
		want := sample(rec)
		gammas := rec.Ratios()
		if len(gammas) != 10 || gammas[0] != 1 {
			t.Fatalf("recorded ratios %v", gammas)
		}
		for _, tc := range []struct {
			threshold  float64
			wantReused bool
		}{{0, false}, {10, true}} {
			p, err := stepcache.New(stepcache.Config{Name: "magcache", Params: map[string]float64{"threshold": tc.threshold}, Calibration: gammas}, cfg.Depth)
			if err != nil {
				t.Fatal(err)
			}
			got := sample(p)
			st := p.Stats()
			if (st.Reused > 0) != tc.wantReused {
				t.Errorf("threshold %v: stats %+v", tc.threshold, st)
			}
			if !tc.wantReused {
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("threshold 0: pixel %d = %v, uncached %v", i, got[i], want[i])
					}
				}
			}
		}
		return nil
	})
}

// randomModel has random weights: a freshly initialised DiT's blocks are identities (adaLN-Zero), on which
// any cache is trivially exact.
func randomModel(cfg model.Config) (*model.DiT, error) {
	if err := model.SetSeed(11); err != nil {
		return nil, err
	}
	m, err := model.New(cfg, model.CPU)
	if err != nil {
		return nil, err
	}
	if err := m.Randomize(0.2); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func TestCalibrationsRoundTripAndApply(t *testing.T) {
	path := stepcache.CalibrationPath(t.TempDir() + "/base.safetensors")
	if !strings.HasSuffix(path, "/base.calibration.json") {
		t.Fatalf("CalibrationPath = %s", path)
	}
	empty, err := stepcache.LoadCalibrations(path)
	if err != nil || len(empty.Profiles) != 0 || len(empty.Speeds) != 0 {
		t.Fatalf("missing file: %v %v", empty, err)
	}
	fast := stepcache.SpeedPoint{Steps: 13, Cache: "cfgcache:interval=2", PSNR: 35.5, SpeedUp: 4.1, Report: "r"}
	saved := stepcache.Calibrations{Profiles: map[string][]float64{"magcache": {1, 0.98, 1.01}},
		Speeds: map[string]stepcache.SpeedPoint{"fast": fast}}
	if err := saved.Save(path); err != nil {
		t.Fatal(err)
	}
	cals, err := stepcache.LoadCalibrations(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cals.Apply(stepcache.Config{Name: "MagCache"}).Calibration; len(got) != 3 || got[1] != 0.98 {
		t.Errorf("Apply(magcache) = %v", got)
	}
	if got := cals.Apply(stepcache.Config{Name: "fora"}).Calibration; got != nil {
		t.Errorf("Apply(fora) = %v, want none (fora takes no calibration)", got)
	}
	if got := cals.Speeds["fast"]; got != fast || len(cals.Speeds) != 1 {
		t.Errorf("speeds read back %+v, want fast = %+v", cals.Speeds, fast)
	}
	bad := []string{`{"speed": {"fast": {"steps": 0, "cache": "none"}}}`, `{"speed": {"fast": {"steps": 10, "cache": "magic"}}}`, `{"magcache": "x"}`}
	for _, body := range bad {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := stepcache.LoadCalibrations(path); err == nil {
			t.Errorf("%s loaded without error", body)
		}
	}
}

func TestFitPolynomial(t *testing.T) {
	want := []float64{0.5, -2, 3, 0.25} // 0.5x³ − 2x² + 3x + 0.25
	var x, y []float64
	for i := range 20 {
		v := float64(i) / 10
		x, y = append(x, v), append(y, ((0.5*v-2)*v+3)*v+0.25)
	}
	got, err := stepcache.FitPolynomial(x, y, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("coefficients %v, want %v", got, want)
		}
	}
	if _, err := stepcache.FitPolynomial(x[:3], y[:3], 3); err == nil {
		t.Fatal("fit with too few points accepted")
	}
}

// TeaCache calibrated on the model itself: threshold 0 reproduces the uncached sampler, a generous one skips.
func TestTeaCacheCalibrationAndSkipping(t *testing.T) {
	if _, err := stepcache.New(stepcache.Config{Name: "teacache"}, 3); err == nil || !strings.Contains(err.Error(), "cachet calibrate teacache") {
		t.Fatalf("teacache without calibration: %v", err)
	}
	onRandomModel(t, 12, func(cfg model.Config, sample func(model.StepCache) []float32) error {
		rec := stepcache.NewTeaRecorder(cfg.Depth)
		want := sample(rec)
		rec.End()
		if len(rec.In) != 11 {
			t.Fatalf("recorded %d pairs, want 11", len(rec.In))
		}
		poly, err := stepcache.FitPolynomial(rec.In, rec.Out, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			threshold  float64
			wantReused bool
		}{{0, false}, {10, true}} {
			p, err := stepcache.New(stepcache.Config{Name: "teacache", Params: map[string]float64{"threshold": tc.threshold}, Calibration: poly}, cfg.Depth)
			if err != nil {
				t.Fatal(err)
			}
			got := sample(p)
			if st := p.Stats(); (st.Reused > 0) != tc.wantReused {
				t.Errorf("threshold %v: stats %+v", tc.threshold, st)
			}
			if !tc.wantReused {
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("threshold 0: pixel %d = %v, uncached %v", i, got[i], want[i])
					}
				}
			}
		}
		return nil
	})
}

// Outside the changes its polynomial was fitted on (there it turns negative), TeaCache computes instead of
// reusing on a guess: a calibration negative everywhere leaves the uncached sampler, however generous the
// threshold.
func TestTeaCacheOutsideItsCalibrationComputes(t *testing.T) {
	onRandomModel(t, 12, func(cfg model.Config, sample func(model.StepCache) []float32) error {
		want := sample(nil)
		p, err := stepcache.New(stepcache.Config{Name: "teacache", Params: map[string]float64{"threshold": 10}, Calibration: []float64{0, -1}}, cfg.Depth)
		if err != nil {
			t.Fatal(err)
		}
		got := sample(p)
		if st := p.Stats(); st.Reused != 0 {
			t.Fatalf("reused %d units on a negative calibration: %+v", st.Reused, st)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pixel %d = %v, uncached %v", i, got[i], want[i])
			}
		}
		return nil
	})
}

// onRandomModel runs fn on a model worker with a small random-weight label model; sample runs the guided
// sampler (labels 0 and 2, seed 1, the given steps) through a step cache (nil = uncached).
func onRandomModel(t *testing.T, steps int, fn func(cfg model.Config, sample func(model.StepCache) []float32) error) {
	t.Helper()
	cfg := model.Config{ImageSize: 8, Channels: 1, Patch: 2, Width: 32, Depth: 3, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondLabel, NumClasses: 3}
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		m, err := randomModel(cfg)
		if err != nil {
			return err
		}
		defer m.Close()
		return fn(cfg, func(c model.StepCache) []float32 {
			req := model.SampleRequest{Labels: []int{0, 2}, Seed: 1, Steps: steps, Guidance: 2}
			if c != nil {
				req.Cache = c
			}
			res, err := m.Sample(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			return res.Pixels
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"foca:interval=4", "foca:interval=4", ""},
		{" TaylorSeer : order=2, interval=3 ", "taylorseer:interval=3,order=2", ""},
		{"none", "none", ""},
		{"", "none", ""},
		{"fora:interval", "", "not name=number"},
		{"fora:interval=x", "", "not name=number"},
		{"magic", "", "unknown cache policy"},
		{"fora:interval=0", "", "interval must be an integer"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := stepcache.ParseConfig(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || c.String() != tc.want {
				t.Fatalf("ParseConfig(%q) = %q, %v; want %q", tc.in, c.String(), err, tc.want)
			}
		})
	}
}
