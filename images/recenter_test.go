package images_test

import (
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/scene"
)

// garment is a synthetic item: a w×h block with a brighter stripe, its box centred in the item like
// Fashion-MNIST's, moved by (dx, dy).
func garment(w, h, dx, dy int) *[scene.ItemPixels]uint8 {
	var it [scene.ItemPixels]uint8
	x0, y0 := (scene.ItemSide-w)/2+dx, (scene.ItemSide-h)/2+dy
	for y := range h {
		for x := range w {
			v := uint8(150)
			if x == w/3 {
				v = 250
			}
			it[(y0+y)*scene.ItemSide+x0+x] = v
		}
	}
	return &it
}

func canvasOf(t *testing.T, it *[scene.ItemPixels]uint8, s scene.Scene) [scene.CanvasPixels]uint8 {
	t.Helper()
	c, err := scene.Render(it, s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func maxDiff(a, b *[scene.CanvasPixels]uint8) int {
	d := 0
	for i := range a {
		d = max(d, abs(int(a[i])-int(b[i])))
	}
	return d
}

func ptr[T any](v T) *T { return &v }

func abs(v int) int { return max(v, -v) }

func TestRecenter(t *testing.T) {
	large := scene.Scene{Large: true}
	want := canvasOf(t, garment(20, 28, 0, 0), large)
	// A scan's noise (σ = 0.03 of full scale) over the whole item: the box is found through it, and the noise
	// inside the box stays.
	noisy := want
	rng := rand.New(rand.NewPCG(1, 2))
	for y := 2; y < 30; y++ {
		for x := 2; x < 30; x++ {
			noisy[y*scene.CanvasSide+x] = uint8(min(255, max(0, float64(noisy[y*scene.CanvasSide+x])+7.65*rng.NormFloat64())))
		}
	}
	var inverted [scene.CanvasPixels]uint8
	for i, v := range want {
		inverted[i] = 255 - v
	}
	// A full-length item shifted up by 2 px within its own picture loses its top rows: recentred, what is
	// left comes back where it was (not stretched), the lost rows stay empty.
	full := garment(20, 28, 0, 0)
	var cut, kept [scene.ItemPixels]uint8
	copy(cut[:], full[2*scene.ItemSide:])
	copy(kept[2*scene.ItemSide:], full[2*scene.ItemSide:])
	for _, tc := range []struct {
		name    string
		in      [scene.CanvasPixels]uint8
		want    [scene.CanvasPixels]uint8
		maxDiff int
	}{
		{"a centred item stays", want, want, 0},
		{"shifted left and down", canvasOf(t, garment(20, 28, -3, 0), large), want, 0},
		{"a shorter item moved up is the same item recentred", canvasOf(t, garment(20, 24, 0, -2), large), images.Recenter(ptr(canvasOf(t, garment(20, 24, 0, 0), large))), 0},
		{"an item cut by a shift is moved back, not stretched", canvasOf(t, &cut, large), canvasOf(t, &kept, large), 0},
		{"a small item on the left is drawn large", canvasOf(t, garment(20, 28, 0, 0), scene.Scene{Position: scene.Left}), want, 110},
		{"noise does not move the item", noisy, want, 40},
		{"an empty canvas stays empty", [scene.CanvasPixels]uint8{}, [scene.CanvasPixels]uint8{}, 0},
		{"a dark item on a light background is left alone", inverted, inverted, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := images.Recenter(&tc.in)
			if d := maxDiff(&got, &tc.want); d > tc.maxDiff {
				t.Errorf("recentred canvas differs from the expected one by up to %d (allowed %d)", d, tc.maxDiff)
			}
		})
	}
}
