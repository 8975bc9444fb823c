package eval

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// samplePoints look like a step-caching benchmark: speed-up vs PSNR.
var samplePoints = []Point{
	{"fora N=2", 1.9, 33.1},
	{"fora N=3", 2.7, 28.4},
	{"fora N=4", 3.4, 24.0},
	{"taylorseer N=4 O=2", 3.5, 30.2},
	{"taylorseer N=3 O=3", 2.8, 34.0},
	{"foca N=4", 3.3, 31.0},
	{"teacache δ=0.1", 2.2, 35.5},
	{"teacache δ=0.3", 3.9, 25.5},
	{"fewer steps (34)", 1.45, 27.0},
	{"fewer steps (25)", 2.0, 22.8},
	{"fewer steps (17)", 2.9, 19.5},
	{"magcache", 2.35, 33.9},
	{"ab-cache order 2", 2.6, 29.9},
	{"bwcache δ=0.2", 1.7, 30.5},
}

// TestVisualSamples renders a grid and a Pareto plot and checks they decode.
// Set CACHET_EVAL_OUT to a directory to keep the PNGs for eyeballing.
func TestVisualSamples(t *testing.T) {
	dir := os.Getenv("CACHET_EVAL_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	labels := []string{
		"a small mirrored sneaker on the left, inverted",
		"a large bag",
		"a small pullover at the top",
		"a large ankle boot, mirrored, inverted",
		"a small t-shirt/top on the right",
		"a small trouser at the bottom, mirrored",
		"supercalifragilisticexpialidocious-item",
	}
	var imgs [][]float32
	for i := range labels {
		im := pattern(32, 32, float64(i))
		if i%2 == 1 {
			for j := range im {
				im[j] = 1 - im[j]
			}
		}
		imgs = append(imgs, im)
	}
	imgs[6] = imgs[6][:10] // a malformed tile shows in magenta
	grid := Grid(imgs, 32, 32, 4, labels, 4)
	plot, err := ParetoPlot(samplePoints, "speed-up (×, median wall-clock)", "PSNR vs uncached (dB)", "Step caching: speed-up vs fidelity (50 steps)")
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]image.Image{"grid.png": grid, "pareto.png": plot} {
		path := filepath.Join(dir, name)
		if err := WritePNG(path, img); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Bounds() != img.Bounds() {
			t.Fatalf("%s: decoded %v, drew %v", name, got.Bounds(), img.Bounds())
		}
	}
}
