package images

import (
	"image"
	"slices"

	"golang.org/x/image/draw"

	"github.com/cachetlab/cachet/scene"
)

// Recenter normalises a light-on-dark canvas the way Fashion-MNIST's items were made: the item's bounding
// box is cropped, scaled so that its longer side is the item side (keeping its aspect ratio; an item that
// already spans it is copied, not resampled) and centred (an odd margin's extra pixel before the item, as
// in the dataset), then rendered as the canonical scene. A shifted, shrunk or enlarged item comes back to
// where the model's features expect it, and a clean Fashion-MNIST item comes back unchanged. An item its
// frame cut (shifted within its own picture) is moved back without scaling, its uncut end where it was.
// A canvas without an item, or dark on light, is returned as is.
func Recenter(canvas *[scene.CanvasPixels]uint8) [scene.CanvasPixels]uint8 {
	const side = scene.CanvasSide
	g := &image.Gray{Pix: canvas[:], Stride: side, Rect: image.Rect(0, 0, side, side)}
	if borderMean(g) > 127 {
		return *canvas
	}
	x0, y0, x1, y1, ok := itemBox(canvas)
	if !ok {
		return *canvas
	}
	w, h := x1-x0+1, y1-y0+1
	tw, th := itemFit(w, h)
	if cropped(x0, x1) || cropped(y0, y1) { // only moved: scaling a cut item up would distort what is left
		tw, th = min(w, scene.ItemSide), min(h, scene.ItemSide)
	}
	fit := image.NewGray(image.Rect(0, 0, tw, th))
	if tw == w && th == h {
		draw.Copy(fit, image.Point{}, g, image.Rect(x0, y0, x1+1, y1+1), draw.Src, nil)
	} else {
		draw.CatmullRom.Scale(fit, fit.Bounds(), g, image.Rect(x0, y0, x1+1, y1+1), draw.Src, nil)
	}
	var item [scene.ItemPixels]uint8
	ox, oy := place(x0, x1, tw), place(y0, y1, th)
	for y := range th {
		copy(item[(oy+y)*scene.ItemSide+ox:], fit.Pix[y*fit.Stride:y*fit.Stride+tw])
	}
	out, err := scene.Render(&item, scene.Canonical(0))
	if err != nil { // the canonical scene is valid by construction
		return *canvas
	}
	return out
}

// cropped reports whether an item spanning [lo, hi] on one axis of the canvas was cut by the item's frame
// (the canonical scene's, where an uploaded image lands): nearly the frame's length (a Fashion-MNIST item
// spans it on its longer side), reaching one edge of the frame but not the other, as an item shifted
// within its own picture is.
func cropped(lo, hi int) bool {
	f0 := (scene.CanvasSide - scene.ItemSide) / 2
	f1 := f0 + scene.ItemSide - 1
	return hi-lo+1 >= scene.ItemSide-3 && (lo <= f0) != (hi >= f1)
}

// place is where an item of length n spanning [lo, hi] of the canvas starts in the item: centred (an odd
// margin's extra pixel before it, as in the dataset), or, when the frame cut it, with its uncut end back
// at the frame's edge, where an item spanning the frame had it.
func place(lo, hi, n int) int {
	switch f0 := (scene.CanvasSide - scene.ItemSide) / 2; {
	case !cropped(lo, hi):
		return (scene.ItemSide - n + 1) / 2
	case lo <= f0: // cut at the start
		return scene.ItemSide - n
	default:
		return 0
	}
}

// noisyFloor is the 3×3 median a pixel must exceed to count as the item in a noisy canvas: Gaussian noise
// of σ = 0.03 (8 of 255) has a median above it about once in 3,000 pixels.
const noisyFloor = 10

// itemBox is the bounding box of the item: its nonzero pixels on a clean (black) background, as
// Fashion-MNIST trimmed its items; on a noisy one (a photo, a scan: most of the background is not black),
// the pixels whose 3×3 median clears noisyFloor.
func itemBox(c *[scene.CanvasPixels]uint8) (x0, y0, x1, y1 int, ok bool) {
	const side = scene.CanvasSide
	medians := make([]uint8, len(c))
	background, lit := 0, 0
	var window [9]uint8
	for y := range side {
		for x := range side {
			k := 0
			for j := -1; j <= 1; j++ {
				for i := -1; i <= 1; i++ {
					xx, yy := x+i, y+j
					window[k] = 0
					if xx >= 0 && yy >= 0 && xx < side && yy < side {
						window[k] = c[yy*side+xx]
					}
					k++
				}
			}
			slices.Sort(window[:])
			medians[y*side+x] = window[4]
			if window[4] < 16 {
				background++
				if c[y*side+x] > 0 {
					lit++
				}
			}
		}
	}
	noisy := lit*5 > background
	x0, y0, x1, y1 = side, side, -1, -1
	for y := range side {
		for x := range side {
			if v := c[y*side+x]; (!noisy && v > 0) || (noisy && medians[y*side+x] > noisyFloor) {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	return x0, y0, x1, y1, x1 >= 0
}
