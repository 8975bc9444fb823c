package classify_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/scene"
)

// With Recenter, a shifted item has the features of the same item centred, under a feature key of its
// own; the zero-shot prototypes (the model's own samples) keep theirs.
func TestRecenterFeatures(t *testing.T) {
	w, m := classifytest.Model(t)
	var centred, shifted [scene.ItemPixels]uint8
	for y := 0; y < scene.ItemSide; y++ {
		for x := 6; x < 21; x++ {
			centred[y*scene.ItemSide+x] = uint8(120 + 5*(x%7))
			shifted[y*scene.ItemSide+x+3] = centred[y*scene.ItemSide+x]
		}
	}
	canvases := make([][]uint8, 2)
	for i, it := range []*[scene.ItemPixels]uint8{&centred, &shifted} {
		c, err := classify.ItemCanvas(it)
		if err != nil {
			t.Fatal(err)
		}
		canvases[i] = c
	}
	var keys, prototypeKeys []string
	for _, on := range []bool{false, true} {
		cfg := classifytest.Config()
		cfg.Recenter = on
		z, err := classify.NewFeaturizerFor(w, m, "test-model", cfg)
		if err != nil {
			t.Fatal(err)
		}
		// One call each: the pass's noise is drawn per position in a batch.
		feats := make([][]float32, len(canvases))
		for i := range canvases {
			f, err := z.Canvases(context.Background(), canvases[i:i+1])
			if err != nil {
				t.Fatal(err)
			}
			feats[i] = f[0]
		}
		if same := slices.Equal(feats[0], feats[1]); same != on {
			t.Errorf("recenter %v: the shifted item's features equal the centred one's: %v", on, same)
		}
		keys, prototypeKeys = append(keys, z.Key()), append(prototypeKeys, z.PrototypeKey())
	}
	if keys[0] == keys[1] || prototypeKeys[0] != prototypeKeys[1] || !strings.HasPrefix(keys[1], prototypeKeys[1]) {
		t.Errorf("keys %q, prototype keys %q: recentring must name its own feature space and share the prototypes'", keys, prototypeKeys)
	}
}
