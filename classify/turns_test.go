package classify_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/scene"
)

// With quarter turns, an item and the same item turned a quarter have (all but the extraction pass's
// noise) the same feature, under keys of their own; without them they do not.
func TestTurnsAverageTurnedCopies(t *testing.T) {
	w, m := classifytest.Model(t)
	var item [scene.ItemPixels]uint8
	for y := 3; y < 25; y++ {
		for x := 8; x < 8+y/2; x++ { // a wedge: no quarter turn maps it onto itself
			item[y*scene.ItemSide+x] = uint8(100 + 6*(x%9))
		}
	}
	canvas, err := classify.ItemCanvas(&item)
	if err != nil {
		t.Fatal(err)
	}
	upright := scene.ModelUnits(canvas)
	turned := images.Turn(upright, scene.CanvasSide, math.Pi/2, -1)
	cases := []struct {
		name  string
		turns []float64
		min   float64 // least cosine between the two items' features
		max   float64
	}{
		{"no turns", nil, -1, 0.95},
		{"quarter turns", []float64{0, 90, 180, -90}, 0.999, 1.000001},
	}
	keys := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := classifytest.Config()
			cfg.Turns = c.turns
			z, err := classify.NewFeaturizerFor(w, m, "test-model", cfg)
			if err != nil {
				t.Fatal(err)
			}
			var feats [2][]float32
			for i, img := range [][]float32{upright, turned} {
				f, err := z.Features(context.Background(), [][]float32{img})
				if err != nil {
					t.Fatal(err)
				}
				feats[i] = f[0]
			}
			cos := classify.Dot(feats[0], feats[1]) // unit features
			if cos < c.min || cos > c.max {
				t.Errorf("cosine between the item and its quarter turn %.4f, want %.3f…%.3f", cos, c.min, c.max)
			}
			keys[z.Key()], keys[z.PrototypeKey()] = true, true
		})
	}
	if len(keys) != 2*len(cases) {
		t.Errorf("keys %v: turns must name feature spaces of their own", keys)
	}
}

func TestTurnsValidated(t *testing.T) {
	w, m := classifytest.Model(t)
	for _, turns := range [][]float64{{200}, {math.NaN()}, make([]float64, classify.MaxTurns+1)} {
		cfg := classifytest.Config()
		cfg.Turns = turns
		_, err := classify.NewFeaturizerFor(w, m, "test-model", cfg)
		var ce *cachet.Error
		if !errors.As(err, &ce) || ce.Code != cachet.CodeInvalidArgument {
			t.Errorf("turns %v: got %v, want an invalid-argument error", turns, err)
		}
	}
}
