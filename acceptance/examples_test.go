package acceptance_test

import (
	"bytes"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/scene"
)

var update = flag.Bool("update", false, "rewrite docs/examples from the Fashion-MNIST test split")

// examples are the README's sample images: Fashion-MNIST test-split items (28×28, light on dark), named by
// their class. Users get files that look like what the model knows; the suite knows each file's class.
var examples = []struct {
	name  string
	index int // in the test split
}{
	{"coat", 14}, {"coat2", 10}, {"bag", 18}, {"bag2", 30}, {"sneaker", 9}, {"sneaker2", 12},
}

// The committed example files are exactly those items, and each name is its item's class.
func TestExampleImages(t *testing.T) {
	set, err := dataset.Load(dataset.DefaultDir, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(t), "docs", "examples")
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			if got := scene.ClassNames[set.Label(ex.index)]; got != strings.TrimRight(ex.name, "0123456789") {
				t.Fatalf("test item %d is a %s, not a %s", ex.index, got, ex.name)
			}
			img := image.NewGray(image.Rect(0, 0, scene.ItemSide, scene.ItemSide))
			copy(img.Pix, set.Image(ex.index)[:])
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, ex.name+".png")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, buf.Bytes()) {
				t.Errorf("%s is not test item %d; rewrite it with go test ./acceptance -run TestExampleImages -update", path, ex.index)
			}
		})
	}
}
