package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

func adapterBase() model.Config {
	return model.Config{ImageSize: 8, Channels: 1, Patch: 2, Width: 32, Depth: 3, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: []string{"a", "shirt", "bag"},
		MaxWords: 4, TextWidth: 16, TextDepth: 1}
}

var testAdapterCfg = model.AdapterConfig{Blocks: []int{0, 2}, Inner: 16, Heads: 2}

// onAdapterWorker runs fn on a worker with a random-weight base (fresh adaLN-Zero gates would hide the
// adapters) and fresh adapters.
func onAdapterWorker(t *testing.T, fn func(base *model.DiT, a *model.Adapters) error) {
	t.Helper()
	w := model.NewWorker(false)
	defer w.Close()
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(11); err != nil {
			return err
		}
		base, err := model.New(adapterBase(), model.CPU)
		if err != nil {
			return err
		}
		defer base.Close()
		if err := base.Randomize(0.2); err != nil {
			return err
		}
		a, err := model.NewAdapters(base.Cfg, testAdapterCfg, model.CPU)
		if err != nil {
			return err
		}
		defer a.Close()
		return fn(base, a)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// randomReference makes a reference of k images' worth of tokens for every block of the base.
func randomReference(a *model.Adapters, k int, seed uint64) (*model.AdapterReference, error) {
	blocks := []int{0, 1, 2}
	tokens := k * a.Base.Tokens()
	return a.NewReference(blocks, tokens, randomTokens(len(blocks), tokens*a.Base.Width, seed))
}

// randomTokens is N(0, 1) reference data for blocks blocks of n values each.
func randomTokens(blocks, n int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	data := make([][]float32, blocks)
	for i := range data {
		data[i] = make([]float32, n)
		for j := range data[i] {
			data[i][j] = float32(rng.NormFloat64())
		}
	}
	return data
}

func sampleWith(base *model.DiT, cache model.StepCache, inj *model.Injection) ([]float32, error) {
	res, err := base.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a shirt", "a bag"}, Seed: 5,
		Steps: 6, Guidance: 3, Cache: cache, Inject: inj})
	if err != nil {
		return nil, err
	}
	return res.Pixels, nil
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestInjectionReachesOnlyConditionalRows(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		refA, err := randomReference(a, 1, 1)
		if err != nil {
			return err
		}
		defer refA.Close()
		refB, err := randomReference(a, 3, 2)
		if err != nil {
			return err
		}
		defer refB.Close()
		injA, injB := refA.Injection(model.GuideReference), refB.Injection(model.GuideReference)
		calls := 0
		probe := &model.Injection{Blocks: injA.Blocks, Attention: func(block, cond int, h, attn *model.Feature) (*model.Feature, error) {
			calls++
			if !slices.Contains(testAdapterCfg.Blocks, block) {
				t.Errorf("injection called at block %d", block)
			}
			shape, err := h.Shape()
			if err != nil {
				return nil, err
			}
			if cond != 2 || shape[0] != 4 {
				t.Errorf("injection saw %d conditional rows of %d, want 2 of 4 (guidance)", cond, shape[0])
			}
			outB, err := injB.Attention(block, cond, h, attn)
			if err != nil {
				return nil, err
			}
			defer outB.Drop()
			outA, err := injA.Attention(block, cond, h, attn)
			if err != nil {
				return nil, err
			}
			a, err := outA.Values()
			if err != nil {
				return nil, err
			}
			b, err := outB.Values()
			if err != nil {
				return nil, err
			}
			half := len(a) / 2 // rows [2, 4): the unconditional branch sees the null reference
			if d := maxDiff(a[half:], b[half:]); d > 1e-6 {
				t.Errorf("block %d: the unconditional rows depend on the reference (%g)", block, d)
			}
			if d := maxDiff(a[:half], b[:half]); d < 1e-4 {
				t.Errorf("block %d: the conditional rows ignore the reference (%g)", block, d)
			}
			return outA, nil
		}}
		if _, err := sampleWith(base, nil, probe); err != nil {
			return err
		}
		if calls != 6*len(testAdapterCfg.Blocks) {
			t.Errorf("%d injection calls in 6 steps, want %d", calls, 6*len(testAdapterCfg.Blocks))
		}
		return nil
	})
}

func TestInjectionCoexistsWithStepCaches(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		ref, err := randomReference(a, 1, 1)
		if err != nil {
			return err
		}
		defer ref.Close()
		plain, err := sampleWith(base, nil, ref.Injection(model.GuideReference))
		if err != nil {
			return err
		}
		// Disabled, each policy reproduces the adapted uncached run exactly (the injection runs inside every
		// computed unit); enabled, the reference still steers what the policy computes.
		for _, tc := range []struct {
			name     string
			disabled map[string]float64
		}{
			{"none", nil},
			{"fora", map[string]float64{"interval": 1}},
			{"taylorseer", map[string]float64{"interval": 1}},
			{"fbcache", map[string]float64{"threshold": 0}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				policy := func(params map[string]float64) model.StepCache {
					p, err := stepcache.New(stepcache.Config{Name: tc.name, Params: params}, base.Cfg.Depth)
					if err != nil {
						t.Fatal(err)
					}
					return p
				}
				exact, err := sampleWith(base, policy(tc.disabled), ref.Injection(model.GuideReference))
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(exact, plain); d != 0 {
					t.Errorf("%s disabled: %g from the adapted uncached run, want 0", tc.name, d)
				}
				cached, err := sampleWith(base, policy(nil), ref.Injection(model.GuideReference))
				if err != nil {
					t.Fatal(err)
				}
				noRef, err := sampleWith(base, policy(nil), nil)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(cached, noRef); !(d > 1e-4) || math.IsNaN(maxDiff(cached, plain)) {
					t.Errorf("%s: the reference changes the cached run by only %g", tc.name, d)
				}
			})
		}
		return nil
	})
}

func TestAdapterWeightsRoundTripStrictly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "adapters.safetensors")
	var want []float32
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		ref, err := randomReference(a, 1, 1)
		if err != nil {
			return err
		}
		defer ref.Close()
		if want, err = sampleWith(base, nil, ref.Injection(model.GuideReference)); err != nil {
			return err
		}
		if err := a.Save(path, map[string]string{"adapters.base_model": "abc"}); err != nil {
			return err
		}
		b, meta, err := model.LoadAdapters(path, base.Cfg, model.CPU)
		if err != nil {
			return err
		}
		defer b.Close()
		if meta["adapters.base_model"] != "abc" || !slices.Equal(b.Cfg.Blocks, a.Cfg.Blocks) {
			t.Errorf("metadata %v, blocks %v", meta, b.Cfg.Blocks)
		}
		ref2, err := randomReference(b, 1, 1)
		if err != nil {
			return err
		}
		defer ref2.Close()
		got, err := sampleWith(base, nil, ref2.Injection(model.GuideReference))
		if err != nil {
			return err
		}
		if d := maxDiff(got, want); d != 0 {
			t.Errorf("loaded adapters sample %g away from the saved ones", d)
		}
		other := base.Cfg
		other.Width, other.Heads = 64, 4
		if _, _, err := model.LoadAdapters(path, other, model.CPU); err == nil {
			t.Error("adapters for a width-32 base loaded onto a width-64 one")
		}
		return nil
	})
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	delete(f.Tensors, "blocks.2.cat.bias")
	data, err := safetensors.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.safetensors")
	if err := os.WriteFile(broken, data, 0o644); err != nil {
		t.Fatal(err)
	}
	onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
		if _, _, err := model.LoadAdapters(broken, base.Cfg, model.CPU); err == nil {
			t.Error("a file missing a tensor loaded")
		}
		if _, _, err := model.LoadAdapters(filepath.Join(dir, "none.safetensors"), base.Cfg, model.CPU); err == nil {
			t.Error("a missing file loaded")
		}
		return nil
	})
}

func TestAdapterConfigValidation(t *testing.T) {
	base := adapterBase()
	tests := []struct {
		name string
		cfg  model.AdapterConfig
	}{
		{"no blocks", model.AdapterConfig{Inner: 16, Heads: 2}},
		{"block outside", model.AdapterConfig{Blocks: []int{3}, Inner: 16, Heads: 2}},
		{"unsorted", model.AdapterConfig{Blocks: []int{2, 0}, Inner: 16, Heads: 2}},
		{"heads", model.AdapterConfig{Blocks: []int{0}, Inner: 15, Heads: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(base); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := testAdapterCfg.Validate(base); err != nil {
		t.Fatal(err)
	}
}

func TestReferenceMustHoldTheAdaptedBlocks(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		tokens := base.Cfg.Tokens()
		data := [][]float32{make([]float32, tokens*base.Cfg.Width)}
		if _, err := a.NewReference([]int{0}, tokens, data); err == nil {
			t.Error("a reference without block 2 was accepted")
		}
		bad := [][]float32{make([]float32, 5), make([]float32, 5)}
		if _, err := a.NewReference([]int{0, 2}, tokens, bad); err == nil {
			t.Error("a reference of the wrong size was accepted")
		}
		return nil
	})
}

// Personalized requests — reference made, sampled with guidance, released — leave no C tensor behind.
func TestAdaptedRequestsLeaveNoTensors(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		request := func(seed uint64) error {
			ref, err := randomReference(a, 2, seed)
			if err != nil {
				return err
			}
			defer ref.Close()
			_, err = sampleWith(base, nil, ref.Injection(model.GuideReference))
			return err
		}
		if err := request(1); err != nil { // warm-up
			return err
		}
		before := model.LiveTensors()
		for s := range uint64(5) {
			if err := request(s + 2); err != nil {
				return err
			}
		}
		if got := model.LiveTensors(); got > before { // fewer is fine: finalizers of earlier garbage ran
			t.Errorf("live C tensors: %d before, %d after 5 personalized requests", before, got)
		}
		return nil
	})
}
