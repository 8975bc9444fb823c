package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

// twoViewReference is one reference of two views (random tokens for every block of the base), and the same
// with its views swapped.
func twoViewReference(base model.Config, seed uint64) (data, swapped [][]float32) {
	rng := rand.New(rand.NewPCG(seed, 9))
	per := base.Tokens() * base.Width
	for range base.Depth {
		d := make([]float32, 2*per)
		for j := range d {
			d[j] = float32(rng.NormFloat64())
		}
		data = append(data, d)
		swapped = append(swapped, slices.Concat(d[per:], d[:per]))
	}
	return data, swapped
}

// viewAdapters are fresh testAdapterCfg adapters with embeddings for views.
func viewAdapters(base *model.DiT, views int) (*model.Adapters, error) {
	cfg := testAdapterCfg
	cfg.Views = views
	return model.NewAdapters(base.Cfg, cfg, model.CPU)
}

// sampleTwoViews samples base with a adapting to a two-view reference of every block.
func sampleTwoViews(base *model.DiT, a *model.Adapters, data [][]float32) ([]float32, error) {
	ref, err := a.NewReference([]int{0, 1, 2}, 2*base.Cfg.Tokens(), data)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	return sampleWith(base, nil, ref.Injection(model.GuideReference))
}

// Attention over the reference tokens does not see their order: without view embeddings a reference's
// views are interchangeable, with them they are not.
func TestViewEmbeddingsTellViewsApart(t *testing.T) {
	for _, tc := range []struct {
		views    int
		sameWhen bool // swapping the views leaves the samples as they were
	}{{0, true}, {2, false}} {
		onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
			a, err := viewAdapters(base, tc.views)
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Randomize(0.3); err != nil {
				return err
			}
			data, swapped := twoViewReference(base.Cfg, 4)
			var out [2][]float32
			for i, d := range [][][]float32{data, swapped} {
				if out[i], err = sampleTwoViews(base, a, d); err != nil {
					return err
				}
			}
			if d := maxDiff(out[0], out[1]); (d < 1e-5) != tc.sameWhen {
				t.Errorf("views %d: swapping a reference's views moves the samples by %g", tc.views, d)
			}
			return nil
		})
	}
}

// Adapters with view embeddings start from trained ones without: the embeddings start at zero, so the
// samples are the source's exactly; they are saved and loaded with the rest.
func TestViewEmbeddingsStartAsANoOpAndRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapters.safetensors")
	onAdapterWorker(t, func(base *model.DiT, src *model.Adapters) error {
		if err := src.Randomize(0.3); err != nil {
			return err
		}
		a, err := viewAdapters(base, 2)
		if err != nil {
			return err
		}
		defer a.Close()
		if _, err := a.Transplant(src); err != nil {
			return err
		}
		data, _ := twoViewReference(base.Cfg, 5)
		sample := func(a *model.Adapters) ([]float32, error) { return sampleTwoViews(base, a, data) }
		want, err := sample(src)
		if err != nil {
			return err
		}
		got, err := sample(a)
		if err != nil {
			return err
		}
		if d := maxDiff(got, want); d != 0 {
			t.Errorf("fresh view embeddings move the samples by %g", d)
		}
		if a.NumParams() != src.NumParams()+int64(len(a.Cfg.Blocks)*2*base.Cfg.Width) {
			t.Errorf("%d parameters with view embeddings, %d without", a.NumParams(), src.NumParams())
		}

		if err := a.Randomize(0.3); err != nil {
			return err
		}
		if want, err = sample(a); err != nil {
			return err
		}
		if err := a.Save(path, nil); err != nil {
			return err
		}
		b, _, err := model.LoadAdapters(path, base.Cfg, model.CPU)
		if err != nil {
			return err
		}
		defer b.Close()
		if b.Cfg.Views != 2 {
			t.Errorf("loaded config %+v", b.Cfg)
		}
		if got, err = sample(b); err != nil {
			return err
		}
		if d := maxDiff(got, want); d != 0 {
			t.Errorf("loaded adapters sample %g away from the saved ones", d)
		}
		return nil
	})
}

func TestViewEmbeddingsNeedWholeReferences(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
		a, err := viewAdapters(base, 2)
		if err != nil {
			return err
		}
		defer a.Close()
		for _, refs := range []int{1, 3} { // views' worth of tokens: one view, one and a half references
			tokens := refs * base.Cfg.Tokens()
			data := make([][]float32, base.Cfg.Depth)
			for i := range data {
				data[i] = make([]float32, tokens*base.Cfg.Width)
			}
			if ref, err := a.NewReference([]int{0, 1, 2}, tokens, data); err == nil {
				ref.Close()
				t.Errorf("%d views' tokens accepted by two-view adapters", refs)
			}
		}
		return nil
	})
	cfg := testAdapterCfg
	for _, views := range []int{-1, 17} {
		cfg.Views = views
		if err := cfg.Validate(adapterBase()); err == nil {
			t.Errorf("views %d accepted", views)
		}
	}
}

// Row weights weigh each row's error: equal weights are the plain mean, a zero weight drops its row, and
// bad weights are refused.
func TestLossWeightsWeighRows(t *testing.T) {
	onAdapterWorker(t, func(base *model.DiT, a *model.Adapters) error {
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(2, 2))
		normals := func(n int) []float32 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			return x
		}
		per, tokens := base.Cfg.Channels*base.Cfg.ImageSize*base.Cfg.ImageSize, base.Cfg.Tokens()
		batch := func(rows int, weights []float64) model.AdapterBatch {
			b := model.AdapterBatch{TrainBatch: model.TrainBatch{Images: normals(rows * per), Noise: normals(rows * per),
				Prompts: slices.Repeat([]string{"a shirt"}, rows), Null: make([]bool, rows), T: make([]float64, rows),
				Weights: weights}, RefTokens: tokens, Refs: [][]float32{normals(rows * tokens * base.Cfg.Width), normals(rows * tokens * base.Cfg.Width)}}
			for i := range b.T {
				b.T[i] = 0.2 + 0.3*float64(i)
			}
			return b
		}
		// one is row 0 of two.
		two := batch(2, nil)
		one := two
		one.Images, one.Noise, one.Prompts, one.Null, one.T = two.Images[:per], two.Noise[:per], two.Prompts[:1], two.Null[:1], two.T[:1]
		one.Refs = [][]float32{two.Refs[0][:tokens*base.Cfg.Width], two.Refs[1][:tokens*base.Cfg.Width]}
		loss := func(b model.AdapterBatch) float64 {
			l, err := model.AdapterFlowLoss(base, a, b)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		plain, row0 := loss(two), loss(one)
		for _, tc := range []struct {
			name    string
			weights []float64
			want    float64
		}{{"equal", []float64{3, 3}, plain}, {"row 0 only", []float64{1, 0}, row0}} {
			w := two
			w.Weights = tc.weights
			if got := loss(w); math.Abs(got-tc.want) > 1e-5*tc.want {
				t.Errorf("%s: loss %v, want %v", tc.name, got, tc.want)
			}
		}
		for _, bad := range [][]float64{{1}, {-1, 2}, {0, 0}, {math.NaN(), 1}} {
			w := two
			w.Weights = bad
			if _, err := model.AdapterFlowLoss(base, a, w); err == nil {
				t.Errorf("weights %v accepted", bad)
			}
		}
		return nil
	})
}

// Starting adapters of more views from trained ones carries the view embeddings both have; the new views'
// start at zero.
func TestTransplantCarriesSharedViews(t *testing.T) {
	dir := t.TempDir()
	onAdapterWorker(t, func(base *model.DiT, _ *model.Adapters) error {
		src, err := viewAdapters(base, 2)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := src.Randomize(0.3); err != nil {
			return err
		}
		dst, err := viewAdapters(base, 6)
		if err != nil {
			return err
		}
		defer dst.Close()
		if _, err := dst.Transplant(src); err != nil {
			return err
		}
		for _, a := range []*model.Adapters{src, dst} {
			if err := a.Save(filepath.Join(dir, fmt.Sprintf("views%d.safetensors", a.Cfg.Views)), nil); err != nil {
				return err
			}
		}
		return nil
	})
	view := func(name string) []float32 {
		f, err := safetensors.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Tensors["blocks.2.view"].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	from, to := view("views2.safetensors"), view("views6.safetensors")
	width := adapterBase().Width
	if len(to) != 6*width || !slices.Equal(to[:2*width], from) || slices.ContainsFunc(to[2*width:], func(x float32) bool { return x != 0 }) {
		t.Fatalf("view embeddings after the transplant: first two rows carried %v, the rest zero %v",
			slices.Equal(to[:2*width], from), !slices.ContainsFunc(to[2*width:], func(x float32) bool { return x != 0 }))
	}
}
