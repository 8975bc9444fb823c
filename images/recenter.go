package images

import (
	"image"

	"golang.org/x/image/draw"

	"github.com/cachetlab/cachet/scene"
)

// recenterThreshold is the fraction of a canvas's brightest pixel that counts as the item: well above the
// noise of a photo or a scan (σ = 0.03 is 8 of 255) and below the darkest fabric of Fashion-MNIST.
const recenterThreshold = 0.2

// Recenter normalises a light-on-dark canvas the way Fashion-MNIST's items were made: the item's bounding
// box is cropped, scaled so that its longer side is the item side (keeping its aspect ratio) and centred,
// then rendered as the canonical scene. A shifted, shrunk or enlarged item comes back to where the model's
// features expect it. A canvas without a clear item (empty, or light-on-dark inverted) is returned as is.
func Recenter(canvas *[scene.CanvasPixels]uint8) [scene.CanvasPixels]uint8 {
	const side = scene.CanvasSide
	peak := uint8(0)
	for _, v := range canvas {
		peak = max(peak, v)
	}
	thr := uint8(float64(peak) * recenterThreshold)
	x0, y0, x1, y1 := side, side, -1, -1
	for y := range side {
		for x := range side {
			if canvas[y*side+x] > thr {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	g := &image.Gray{Pix: canvas[:], Stride: side, Rect: image.Rect(0, 0, side, side)}
	if peak == 0 || x1 < 0 || borderMean(g) > 127 {
		return *canvas
	}
	w, h := x1-x0+1, y1-y0+1
	tw, th := scene.ItemSide, scene.ItemSide
	if w > h {
		th = max(1, (h*scene.ItemSide+w/2)/w)
	} else if h > w {
		tw = max(1, (w*scene.ItemSide+h/2)/h)
	}
	fit := image.NewGray(image.Rect(0, 0, tw, th))
	draw.CatmullRom.Scale(fit, fit.Bounds(), g, image.Rect(x0, y0, x1+1, y1+1), draw.Src, nil)
	var item [scene.ItemPixels]uint8
	ox, oy := (scene.ItemSide-tw)/2, (scene.ItemSide-th)/2
	for y := range th {
		copy(item[(oy+y)*scene.ItemSide+ox:], fit.Pix[y*fit.Stride:y*fit.Stride+tw])
	}
	out, err := scene.Render(&item, scene.Canonical(0))
	if err != nil { // the canonical scene is valid by construction
		return *canvas
	}
	return out
}
