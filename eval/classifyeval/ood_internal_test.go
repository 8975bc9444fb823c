package classifyeval

import (
	"os"
	"testing"

	"github.com/cachetlab/cachet/scene"
)

// The glyph task draws every label, inked, inside the item, and the same seed draws the same images.
func TestGlyphItems(t *testing.T) {
	items, labels, err := GlyphItems(DefaultFontsDir, 3, glyphTrainSeed)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3*len(GlyphLabels) || len(labels) != len(items) {
		t.Fatalf("%d items, %d labels", len(items), len(labels))
	}
	for i, it := range items {
		var ink, edge int
		for p, v := range it {
			if v > 64 {
				ink++
				if x, y := p%scene.ItemSide, p/scene.ItemSide; x == 0 || y == 0 || x == scene.ItemSide-1 || y == scene.ItemSide-1 {
					edge++
				}
			}
		}
		if ink < 20 || edge > 4 {
			t.Errorf("item %d (%s): %d inked pixels, %d on the edge", i, GlyphLabels[labels[i]], ink, edge)
		}
	}
	again, _, err := GlyphItems(DefaultFontsDir, 3, glyphTrainSeed)
	if err != nil || again[7] != items[7] {
		t.Errorf("the same seed drew other images: %v", err)
	}
	if path := os.Getenv("CACHET_GLYPHS_PGM"); path != "" { // a look at them: a PGM strip
		out := []byte("P5 " + itoa(scene.ItemSide*len(items)) + " " + itoa(scene.ItemSide) + " 255\n")
		for y := range scene.ItemSide {
			for _, it := range items {
				out = append(out, it[y*scene.ItemSide:(y+1)*scene.ItemSide]...)
			}
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(v int) string {
	s := ""
	for ; v > 0; v /= 10 {
		s = string(rune('0'+v%10)) + s
	}
	return s
}
