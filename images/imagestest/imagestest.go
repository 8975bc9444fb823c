// Package imagestest makes small encoded test images for upload tests.
package imagestest

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// Pattern draws a w×h test image: a bright blob whose place and size depend on seed, on black.
func Pattern(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy, r := (seed*7)%w, (seed*13)%h, max(2, (seed%5+2)*min(w, h)/12)
	for y := range h {
		for x := range w {
			v := uint8(0)
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < r*r {
				v = uint8(150 + seed*10%100)
			}
			img.Set(x, y, color.RGBA{v, v / 2, v, 255})
		}
	}
	return img
}

// PNG encodes img as PNG.
func PNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// JPEG encodes img as JPEG at the default quality.
func JPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
