package featurecache_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/featurecache"
)

// canonicalRefs renders n random items as the canonical scene, in model units: what an upload becomes.
func canonicalRefs(t *testing.T, n int) ([][dataset.CanvasPixels]uint8, [][]float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	canvases := make([][dataset.CanvasPixels]uint8, n)
	units := make([][]float32, n)
	for i := range n {
		var item [dataset.ItemPixels]uint8
		for p := range item {
			item[p] = uint8(rng.IntN(256))
		}
		c, err := dataset.Render(&item, dataset.Canonical(0))
		if err != nil {
			t.Fatal(err)
		}
		canvases[i], units[i] = c, dataset.ModelUnits(c[:])
	}
	return canvases, units
}

func near(a, b []float32) float64 {
	var worst float64
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i]-b[i]))/max(1, math.Abs(float64(a[i]))))
	}
	return worst
}

// A two-view cache is the image's one-view cache followed by its small view's, and it says so in Views,
// through Concat and the codec; its pooled vector is the first view's.
func TestExtractSmallView(t *testing.T) {
	ctx := context.Background()
	w, m := randomModelOf(t, dataset.CanvasSide, 4)
	one := featurecache.DefaultConfig(m)
	two := one
	two.Views = 2
	e1, err := featurecache.NewExtractor(w, m, "test-model", one)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := featurecache.NewExtractor(w, m, "test-model", two)
	if err != nil {
		t.Fatal(err)
	}
	canvases, refs := canonicalRefs(t, 2)
	got, err := e2.Extract(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	tokens := m.Cfg.Tokens()
	for i, f := range got {
		small, err := dataset.SmallView(&canvases[i])
		if err != nil {
			t.Fatal(err)
		}
		want, err := e1.Extract(ctx, [][]float32{refs[i], dataset.ModelUnits(small[:])})
		if err != nil {
			t.Fatal(err)
		}
		if f.Views != 2 || f.Tokens != 2*tokens {
			t.Fatalf("reference %d: %d views of %d tokens, want 2 of %d", i, f.Views, f.Tokens, 2*tokens)
		}
		half := tokens * f.Width
		for b := range f.Blocks {
			if d := near(f.Data[b][:half], want[0].Data[b]); d > 1e-4 {
				t.Fatalf("reference %d block %d: the first view differs from the one-view cache by %g", i, b, d)
			}
			if d := near(f.Data[b][half:], want[1].Data[b]); d > 1e-4 {
				t.Fatalf("reference %d block %d: the second view differs from the small view's cache by %g", i, b, d)
			}
		}
		p2, err := f.Pooled(f.Blocks)
		if err != nil {
			t.Fatal(err)
		}
		p1, err := want[0].Pooled(f.Blocks)
		if err != nil {
			t.Fatal(err)
		}
		if d := near(p2, p1); d > 1e-5 {
			t.Fatalf("reference %d: the pooled vector is not the first view's (off by %g)", i, d)
		}
	}

	all, err := featurecache.Concat(got)
	if err != nil {
		t.Fatal(err)
	}
	if all.Views != 2 || all.Tokens != 4*tokens {
		t.Fatalf("concat: %d views, %d tokens", all.Views, all.Tokens)
	}
	enc, err := featurecache.Encode(all)
	if err != nil {
		t.Fatal(err)
	}
	back, err := featurecache.Decode(enc, "test-model")
	if err != nil {
		t.Fatal(err)
	}
	if back.Views != 2 || back.Tokens != all.Tokens {
		t.Fatalf("decoded: %d views, %d tokens", back.Views, back.Tokens)
	}
	oneView, err := e1.Extract(ctx, refs[:1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := featurecache.Concat([]*featurecache.Features{got[0], oneView[0]}); err == nil {
		t.Fatal("concatenated a two-view and a one-view cache")
	}
}
