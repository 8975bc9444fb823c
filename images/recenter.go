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
// where the model's features expect it, and a clean Fashion-MNIST item comes back unchanged. A canvas
// without an item, or dark on light, is returned as is.
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
	fit := image.NewGray(image.Rect(0, 0, tw, th))
	if tw == w && th == h {
		draw.Copy(fit, image.Point{}, g, image.Rect(x0, y0, x1+1, y1+1), draw.Src, nil)
	} else {
		draw.CatmullRom.Scale(fit, fit.Bounds(), g, image.Rect(x0, y0, x1+1, y1+1), draw.Src, nil)
	}
	var item [scene.ItemPixels]uint8
	ox, oy := (scene.ItemSide-tw+1)/2, (scene.ItemSide-th+1)/2
	for y := range th {
		copy(item[(oy+y)*scene.ItemSide+ox:], fit.Pix[y*fit.Stride:y*fit.Stride+tw])
	}
	out, err := scene.Render(&item, scene.Canonical(0))
	if err != nil { // the canonical scene is valid by construction
		return *canvas
	}
	return out
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
