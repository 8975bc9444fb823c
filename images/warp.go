package images

import (
	"math"

	"github.com/cachetlab/cachet/scene"
)

// Warp scales an item by s and rotates it by angle (radians) about its centre, then shifts it by (dx, dy)
// pixels, sampling the source bilinearly (outside it: background). It is how an upload differs from a
// canonical item: the robustness evaluation's perturbations and the zero-shot head's augmented copies.
func Warp(it *[scene.ItemPixels]uint8, s, angle, dx, dy float64) [scene.ItemPixels]uint8 {
	const n = scene.ItemSide
	c := float64(n-1) / 2
	cos, sin := math.Cos(angle), math.Sin(angle)
	var out [scene.ItemPixels]uint8
	for y := range n {
		for x := range n {
			// The inverse map: undo the shift, then the rotation and the scale.
			u, v := float64(x)-dx-c, float64(y)-dy-c
			sx := (cos*u+sin*v)/s + c
			sy := (-sin*u+cos*v)/s + c
			out[y*n+x] = bilinear(it, sx, sy)
		}
	}
	return out
}

func bilinear(it *[scene.ItemPixels]uint8, x, y float64) uint8 {
	const n = scene.ItemSide
	v := interpolate(func(x, y int) float64 {
		if x < 0 || y < 0 || x >= n || y >= n {
			return 0
		}
		return float64(it[y*n+x])
	}, x, y)
	return uint8(math.Round(min(255, max(0, v))))
}

// interpolate samples the pixels at gives bilinearly at (x, y).
func interpolate(at func(x, y int) float64, x, y float64) float64 {
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := x-float64(x0), y-float64(y0)
	return (1-fy)*((1-fx)*at(x0, y0)+fx*at(x0+1, y0)) + fy*((1-fx)*at(x0, y0+1)+fx*at(x0+1, y0+1))
}

// Turn rotates a side×side image by angle (radians) about its centre, sampling bilinearly; what comes
// from outside the image is background. It works on model units, so the classifier can turn canvases and
// the model's own samples alike.
func Turn(img []float32, side int, angle, background float64) []float32 {
	c := float64(side-1) / 2
	cos, sin := math.Cos(angle), math.Sin(angle)
	at := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= side || y >= side {
			return background
		}
		return float64(img[y*side+x])
	}
	out := make([]float32, side*side)
	for y := range side {
		for x := range side {
			u, v := float64(x)-c, float64(y)-c
			out[y*side+x] = float32(interpolate(at, cos*u+sin*v+c, -sin*u+cos*v+c))
		}
	}
	return out
}
