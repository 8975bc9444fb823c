package model_test

import (
	"context"
	"slices"
	"testing"

	"github.com/cachetlab/cachet/model"
)

func TestParseReferenceGuidance(t *testing.T) {
	for _, tc := range []struct {
		name string
		want model.ReferenceGuidance
		ok   bool
	}{{"joint", model.GuideReference, true}, {"prompt", model.KeepReference, true}, {"subject", model.GuideSubject, true}, {"", 0, false}, {"both", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := model.ParseReferenceGuidance(tc.name)
			if (err == nil) != tc.ok || (tc.ok && (g != tc.want || g.String() != tc.name)) {
				t.Errorf("ParseReferenceGuidance(%q) = %v, %v", tc.name, g, err)
			}
		})
	}
}

// batchShapeTol bounds float32 rounding differences between the same rows computed in different batches.
const batchShapeTol = 2e-5

// KeepReference must show each row's subject to its unconditional twin too, leave the conditional rows as
// GuideReference has them, and keep per-row references in row order.
func TestKeepReferenceShowsTheSubjectToBothBranches(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		blocks, tokens := []int{0, 1, 2}, a.Base.Tokens()
		dataA, dataB := randomTokens(len(blocks), tokens*a.Base.Width, 1), randomTokens(len(blocks), tokens*a.Base.Width, 2)
		both := make([][]float32, len(blocks))
		for i := range both {
			both[i] = slices.Concat(dataA[i], dataB[i])
		}
		var refs []*model.AdapterReference
		defer func() {
			for _, r := range refs {
				r.Close()
			}
		}()
		for _, mk := range []func() (*model.AdapterReference, error){
			func() (*model.AdapterReference, error) { return a.NewReference(blocks, tokens, dataA) },
			func() (*model.AdapterReference, error) { return a.NewReference(blocks, tokens, dataB) },
			func() (*model.AdapterReference, error) { return a.NewRowReferences(blocks, 2, tokens, both) },
		} {
			r, err := mk()
			if err != nil {
				return err
			}
			refs = append(refs, r)
		}
		keepA, keepB, keepRows := refs[0].Injection(model.KeepReference), refs[1].Injection(model.KeepReference), refs[2].Injection(model.KeepReference)
		jointA := refs[0].Injection(model.GuideReference)
		probe := &model.Injection{Blocks: keepA.Blocks, Attention: func(block, cond int, h, attn *model.Feature) (*model.Feature, error) {
			values := func(inj *model.Injection) ([]float32, error) {
				out, err := inj.Attention(block, cond, h, attn)
				if err != nil {
					return nil, err
				}
				defer out.Drop()
				return out.Values()
			}
			var got [4][]float32
			for i, inj := range []*model.Injection{keepA, keepB, keepRows, jointA} {
				var err error
				if got[i], err = values(inj); err != nil {
					return nil, err
				}
			}
			vA, vB, vRows, vJoint := got[0], got[1], got[2], got[3]
			row := len(vA) / 4 // rows: conditional 0, 1, then their unconditional twins
			for r, want := range [][]float32{vA, vB, vA, vB} {
				if d := maxDiff(vRows[r*row:(r+1)*row], want[r*row:(r+1)*row]); d > batchShapeTol {
					t.Errorf("block %d row %d: per-row references differ from that row's own by %g", block, r, d)
				}
			}
			if d := maxDiff(vA[:2*row], vJoint[:2*row]); d > batchShapeTol {
				t.Errorf("block %d: the conditional rows differ between the guidance forms by %g", block, d)
			}
			if d := maxDiff(vA[2*row:], vJoint[2*row:]); d < 1e-3 {
				t.Errorf("block %d: the unconditional rows do not see the reference (%g)", block, d)
			}
			return keepA.Attention(block, cond, h, attn)
		}}
		keep, err := sampleWith(base, nil, probe)
		if err != nil {
			return err
		}
		joint, err := sampleWith(base, nil, jointA)
		if err != nil {
			return err
		}
		if d := maxDiff(keep, joint); d < 1e-3 {
			t.Errorf("the guidance forms sample the same images (%g)", d)
		}
		return nil
	})
}

// With GuideSubject both branches see the prompt, so no-op adapters leave guidance nothing to scale: the
// guided run must be the unguided one.
func TestGuideSubjectKeepsThePromptInBothBranches(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		ref, err := randomReference(a, 1, 1)
		if err != nil {
			return err
		}
		defer ref.Close()
		guided, err := sampleWith(base, nil, ref.Injection(model.GuideSubject))
		if err != nil {
			return err
		}
		res, err := base.Sample(context.Background(), model.SampleRequest{Prompts: []string{"a shirt", "a bag"}, Seed: 5, Steps: 6, Guidance: 1})
		if err != nil {
			return err
		}
		if d := maxDiff(guided, res.Pixels); d > 1e-4 {
			t.Errorf("no-op adapters under subject guidance moved the images by %g from the unguided run", d)
		}
		joint, err := sampleWith(base, nil, ref.Injection(model.GuideReference))
		if err != nil {
			return err
		}
		if d := maxDiff(joint, res.Pixels); d < 1e-3 {
			t.Errorf("joint guidance matches the unguided run (%g): the test cannot tell the forms apart", d)
		}
		return nil
	})
}
