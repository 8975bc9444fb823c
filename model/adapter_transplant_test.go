package model_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// adaptedSamples samples the shared test prompts with a random reference through a.
func adaptedSamples(base *model.DiT, a *model.Adapters) ([]float32, error) {
	ref, err := randomReference(a, 2, 1)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	return sampleWith(base, nil, ref.Injection(model.GuideReference))
}

// Fresh adapters, in either form, leave the base's samples as they are.
func TestFreshAdaptersAreANoOp(t *testing.T) {
	for _, additive := range []bool{false, true} {
		t.Run(fmt.Sprintf("additive=%v", additive), func(t *testing.T) {
			onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
				cfg := testAdapterCfg
				cfg.Additive = additive
				a, err := model.NewAdapters(base.Cfg, cfg, model.CPU)
				if err != nil {
					return err
				}
				defer a.Close()
				plain, err := sampleWith(base, nil, nil)
				if err != nil {
					return err
				}
				adapted, err := adaptedSamples(base, a)
				if err != nil {
					return err
				}
				if d := maxDiff(plain, adapted); d > 1e-5 {
					t.Errorf("fresh adapters changed the samples by %g", d)
				}
				return nil
			})
		})
	}
}

// TestTransplantConvertsBetweenForms: additive → concat is exact ([I | W]), and concat → additive keeps
// the reference half and the bias, so additive → concat → additive gives back the same function.
func TestTransplantConvertsBetweenForms(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
		additive := testAdapterCfg
		additive.Additive = true
		newAdapters := func(cfg model.AdapterConfig) *model.Adapters {
			a, err := model.NewAdapters(base.Cfg, cfg, model.CPU)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Close)
			return a
		}
		a1 := newAdapters(additive)
		if err := a1.Randomize(0.2); err != nil {
			return err
		}
		want, err := adaptedSamples(base, a1)
		if err != nil {
			return err
		}
		plain, err := sampleWith(base, nil, nil)
		if err != nil {
			return err
		}
		if d := maxDiff(plain, want); d < 1e-3 {
			t.Fatalf("random additive adapters changed the samples by only %g", d)
		}
		c := newAdapters(testAdapterCfg)
		a2 := newAdapters(additive)
		for _, step := range []struct {
			name     string
			dst, src *model.Adapters
		}{{"additive → concat", c, a1}, {"concat → additive", a2, c}} {
			carried, err := step.dst.Transplant(step.src)
			if err != nil {
				return err
			}
			if !slices.Equal(carried, testAdapterCfg.Blocks) {
				t.Errorf("%s carried blocks %v, want %v", step.name, carried, testAdapterCfg.Blocks)
			}
			got, err := adaptedSamples(base, step.dst)
			if err != nil {
				return err
			}
			if d := maxDiff(want, got); d > 1e-5 {
				t.Errorf("%s changed the samples by %g", step.name, d)
			}
		}
		return nil
	})
}

func TestTransplantLeavesNewBlocksANoOp(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
		one := model.AdapterConfig{Blocks: []int{0}, Inner: 16, Heads: 2, Additive: true}
		small, err := model.NewAdapters(base.Cfg, one, model.CPU)
		if err != nil {
			return err
		}
		defer small.Close()
		if err := small.Randomize(0.2); err != nil {
			return err
		}
		want, err := adaptedSamples(base, small)
		if err != nil {
			return err
		}
		more := one
		more.Blocks = []int{0, 1, 2}
		big, err := model.NewAdapters(base.Cfg, more, model.CPU)
		if err != nil {
			return err
		}
		defer big.Close()
		carried, err := big.Transplant(small)
		if err != nil {
			return err
		}
		if !slices.Equal(carried, []int{0}) {
			t.Errorf("carried blocks %v, want [0]", carried)
		}
		got, err := adaptedSamples(base, big)
		if err != nil {
			return err
		}
		if d := maxDiff(want, got); d > 1e-5 {
			t.Errorf("the new blocks changed the samples by %g", d)
		}

		wide := more
		wide.Inner = 32
		other, err := model.NewAdapters(base.Cfg, wide, model.CPU)
		if err != nil {
			return err
		}
		defer other.Close()
		if _, err := other.Transplant(small); err == nil {
			t.Error("adapters of another inner width were transplanted")
		}
		return nil
	})
}
