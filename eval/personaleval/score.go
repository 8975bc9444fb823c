// Package personaleval is `cachet eval personalization`: unseen test-split items become subjects (their
// canonical render is the one reference image), each is generated under random prompts of its class with
// the adapters, and scored for identity (the evaluator's feature cosine and SSIM between the de-rendered
// generated item and the reference item) and prompt alignment (eval base's attribute accuracies), next to
// two baselines: the base model with the same prompt and no reference, and the oracle (the reference item
// rendered as the prompt says). It also times extraction, the adapters' generation overhead and the
// cache size. It writes report.json, report.md and grid.png.
//
// Subject selection, identity scoring and the report are pure Go and tested on real items without a model.
package personaleval

import (
	"math"
	"math/rand/v2"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/scene"
)

// Subject is one unseen item with the scenes it is generated under.
type Subject struct {
	Index     int // in the test split
	Class     int
	Item      [scene.ItemPixels]uint8
	Reference [scene.CanvasPixels]uint8 // the canonical render: the subject's one reference image
	Scenes    []scene.Scene
}

// subjectStream seeds the choice of subjects and their scenes.
const subjectStream uint64 = 0x7375626a // "subj"

// Subjects picks n test-split items, classes in turn (subject j has class j mod 10), each item chosen by
// its own seeded stream, with prompts random scenes of its class. Same arguments, same subjects.
func Subjects(set *dataset.Set, n, prompts int, seed uint64) ([]Subject, error) {
	if n <= 0 || prompts <= 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "need at least one subject and one prompt (got %d, %d)", n, prompts)
	}
	var byClass [scene.NumClasses][]int
	for i := range set.Len() {
		byClass[set.Label(i)] = append(byClass[set.Label(i)], i)
	}
	used := map[int]bool{}
	out := make([]Subject, 0, n)
	for j := range n {
		class := j % scene.NumClasses
		items := byClass[class]
		if len(items) == 0 {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the data has no %s item", scene.ClassNames[class])
		}
		rng := rand.New(rand.NewPCG(seed^subjectStream, uint64(j)))
		idx := items[rng.IntN(len(items))]
		for tries := 0; used[idx] && tries < len(items); tries++ { // distinct subjects while the class has items
			idx = items[rng.IntN(len(items))]
		}
		used[idx] = true
		s := Subject{Index: idx, Class: class, Item: *set.Image(idx)}
		ref, err := scene.Render(&s.Item, scene.Canonical(class))
		if err != nil {
			return nil, err
		}
		s.Reference = ref
		for range prompts {
			s.Scenes = append(s.Scenes, scene.RandomScene(rng, class))
		}
		out = append(out, s)
	}
	return out, nil
}

// Identity is the mean identity similarity of a set of generated items to their subjects' items.
type Identity struct {
	Cosine float64 `json:"evaluator_cosine"` // cosine of the evaluator's penultimate features
	SSIM   float64 `json:"ssim"`             // on the 28×28 items, 0…255
	N      int     `json:"n"`
}

// IdentityOf scores pairs: items[i] (de-rendered generations) against refs[i] (the subject's item), with
// their evaluator features itemF[i] and refF[i].
func IdentityOf(items, refs []*[scene.ItemPixels]uint8, itemF, refF [][]float64) Identity {
	id := Identity{N: len(items)}
	if len(items) == 0 || len(refs) != len(items) || len(itemF) != len(items) || len(refF) != len(items) {
		return Identity{} // nothing to compare: N = 0 says so
	}
	for i := range items {
		id.Cosine += cosine(itemF[i], refF[i])
		id.SSIM += eval.SSIM(toFloat(items[i]), toFloat(refs[i]), scene.ItemSide, scene.ItemSide, 255)
	}
	id.Cosine /= float64(len(items))
	id.SSIM /= float64(len(items))
	return id
}

func toFloat(p *[scene.ItemPixels]uint8) []float32 {
	out := make([]float32, len(p))
	for i, v := range p {
		out[i] = float32(v)
	}
	return out
}

// cosine is 0 when either vector is zero (an empty item's features).
func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// GapClosed is the share of the gap between the no-reference baseline and the oracle that the adapted
// generations close: (adapted − baseline) / (oracle − baseline). NaN when the oracle is no better.
func GapClosed(adapted, baseline, oracle float64) float64 {
	if !(oracle > baseline) {
		return math.NaN()
	}
	return (adapted - baseline) / (oracle - baseline)
}

// SceneIdentity is identity on the images whose scene has one property (large, mirrored, …): where the
// adapters fall short of the oracle.
type SceneIdentity struct {
	Kind            string   `json:"kind"`
	Adapted         Identity `json:"adapted"`
	NoReference     Identity `json:"no_reference"`
	Oracle          Identity `json:"oracle"`
	GapClosedCosine Num      `json:"gap_closed_cosine"`
	GapClosedSSIM   Num      `json:"gap_closed_ssim"`
}

// Scored is a set of items (de-rendered generations, oracles or references) with their evaluator features.
type Scored struct {
	Items    []*[scene.ItemPixels]uint8
	Features [][]float64
}

func (s Scored) pick(idx []int) Scored {
	out := Scored{Items: make([]*[scene.ItemPixels]uint8, len(idx)), Features: make([][]float64, len(idx))}
	for i, k := range idx {
		out.Items[i], out.Features[i] = s.Items[k], s.Features[k]
	}
	return out
}

func identity(s, refs Scored) Identity {
	return IdentityOf(s.Items, refs.Items, s.Features, refs.Features)
}

// sceneKinds split the images by one scene property at a time.
var sceneKinds = []struct {
	name string
	has  func(scene.Scene) bool
}{
	{"large", func(s scene.Scene) bool { return s.Large }},
	{"small", func(s scene.Scene) bool { return !s.Large }},
	{"small, centred", func(s scene.Scene) bool { return !s.Large && s.Position == scene.Center }},
	{"small, off-centre", func(s scene.Scene) bool { return !s.Large && s.Position != scene.Center }},
	{"mirrored", func(s scene.Scene) bool { return s.Mirrored }},
	{"not mirrored", func(s scene.Scene) bool { return !s.Mirrored }},
	{"inverted", func(s scene.Scene) bool { return s.Inverted }},
	{"not inverted", func(s scene.Scene) bool { return !s.Inverted }},
}

// IdentityByScene scores image i (scene scenes[i]) of adapted, plain and oracle against refs[i], per scene
// kind; kinds no image has are left out.
func IdentityByScene(scenes []scene.Scene, refs, adapted, plain, oracle Scored) []SceneIdentity {
	var out []SceneIdentity
	for _, k := range sceneKinds {
		var idx []int
		for i, s := range scenes {
			if k.has(s) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		r := refs.pick(idx)
		si := SceneIdentity{Kind: k.name, Adapted: identity(adapted.pick(idx), r), NoReference: identity(plain.pick(idx), r),
			Oracle: identity(oracle.pick(idx), r)}
		si.GapClosedCosine = Num(GapClosed(si.Adapted.Cosine, si.NoReference.Cosine, si.Oracle.Cosine))
		si.GapClosedSSIM = Num(GapClosed(si.Adapted.SSIM, si.NoReference.SSIM, si.Oracle.SSIM))
		out = append(out, si)
	}
	return out
}
