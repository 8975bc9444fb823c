package featurecache_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/scene"
)

// canonicalRefs renders n random items as the canonical scene, in model units: what an upload becomes.
func canonicalRefs(t *testing.T, n int) ([][scene.CanvasPixels]uint8, [][]float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	canvases := make([][scene.CanvasPixels]uint8, n)
	units := make([][]float32, n)
	for i := range n {
		var item [scene.ItemPixels]uint8
		for p := range item {
			item[p] = uint8(rng.IntN(256))
		}
		c, err := scene.Render(&item, scene.Canonical(0))
		if err != nil {
			t.Fatal(err)
		}
		canvases[i], units[i] = c, scene.ModelUnits(c[:])
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

// An n-view cache is the image's one-view cache followed by its small views' (centred, left, right, top,
// bottom, as many as n asks), and it says so in Views, through Concat and the codec; its pooled vector is
// the first view's.
func TestExtractSmallView(t *testing.T) {
	ctx := context.Background()
	w, m := randomModelOf(t, scene.CanvasSide, 4)
	one := featurecache.DefaultConfig(m)
	e1, err := featurecache.NewExtractor(w, m, "test-model", one)
	if err != nil {
		t.Fatal(err)
	}
	canvases, refs := canonicalRefs(t, 2)
	tokens := m.Cfg.Tokens()
	extractViews := func(t *testing.T, nv int) []*featurecache.Features {
		cfg := one
		cfg.Views = nv
		e, err := featurecache.NewExtractor(w, m, "test-model", cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Extract(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range got {
			views := [][]float32{refs[i]}
			for _, pos := range scene.Positions()[:nv-1] {
				small, err := scene.SmallView(&canvases[i], pos)
				if err != nil {
					t.Fatal(err)
				}
				views = append(views, scene.ModelUnits(small[:]))
			}
			want, err := e1.Extract(ctx, views)
			if err != nil {
				t.Fatal(err)
			}
			if f.Views != nv || f.Tokens != nv*tokens {
				t.Fatalf("reference %d: %d views of %d tokens, want %d of %d", i, f.Views, f.Tokens, nv, nv*tokens)
			}
			per := tokens * f.Width
			for b := range f.Blocks {
				for v := range nv {
					if d := near(f.Data[b][v*per:(v+1)*per], want[v].Data[b]); d > 1e-4 {
						t.Fatalf("reference %d block %d: view %d differs from its one-view cache by %g", i, b, v, d)
					}
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
		return got
	}
	t.Run("every position", func(t *testing.T) { extractViews(t, featurecache.MaxViews) })
	got := extractViews(t, 2)

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
