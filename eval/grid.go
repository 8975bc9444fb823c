package eval

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

const gridGap = 2 // px between tiles and around the border

var (
	// Mid-gray separates both light-on-dark and dark-on-light tiles from the
	// background, which white or black would not.
	gridBackground = color.RGBA{0xB4, 0xB4, 0xB4, 0xFF}
	gridText       = color.RGBA{0x10, 0x10, 0x10, 0xFF}
	// A tile whose data is not w×h is filled with this, so a shape bug shows
	// up in the picture instead of aborting a long benchmark's report.
	gridBadTile = color.RGBA{0xFF, 0x00, 0xFF, 0xFF}
)

// Grid lays out w×h grayscale images (row-major, values in [0,1], clamped)
// in cols columns (cols <= 0 picks ⌈√n⌉), each upscaled by scale with
// nearest-neighbour sampling (scale < 1 means 1), with a 2 px gap between
// tiles. When labels is non-empty, labels[i] is written under tile i in a
// 7×13 bitmap font, word-wrapped to the tile width; the label area is as
// tall as the longest wrapped label, so all rows line up. Prompts need room:
// at scale 4 a 32 px image gives 18 characters per line.
//
// It returns nil when there is nothing to draw (no images, w or h < 1).
// A tile whose slice is not w×h long is filled with magenta.
func Grid(images [][]float32, w, h, cols int, labels []string, scale int) *image.RGBA {
	n := len(images)
	if n == 0 || w < 1 || h < 1 {
		return nil
	}
	scale = max(scale, 1)
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	tw, th := w*scale, h*scale

	face := basicfont.Face7x13
	lineH := face.Metrics().Height.Ceil()
	wrapped := make([][]string, n)
	maxLines := 0
	for i := 0; i < n && i < len(labels); i++ {
		// 3 px of padding each side keeps neighbouring labels apart.
		wrapped[i] = wrapText(face, labels[i], max(tw-6, 1))
		maxLines = max(maxLines, len(wrapped[i]))
	}
	labelH := 0
	if maxLines > 0 {
		labelH = maxLines*lineH + 4 // 2 px above and below the text
	}
	cellH := th + labelH

	W := gridGap + cols*(tw+gridGap)
	H := gridGap + rows*(cellH+gridGap)
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.NewUniform(gridBackground), image.Point{}, draw.Src)

	d := &font.Drawer{Dst: img, Src: image.NewUniform(gridText), Face: face}
	for i, px := range images {
		x0 := gridGap + (i%cols)*(tw+gridGap)
		y0 := gridGap + (i/cols)*(cellH+gridGap)
		drawTile(img, px, w, h, scale, x0, y0)
		for k, line := range wrapped[i] {
			// Centre each line under its tile.
			lw := d.MeasureString(line).Ceil()
			d.Dot = fixed.P(x0+(tw-lw)/2, y0+th+2+k*lineH+face.Metrics().Ascent.Ceil())
			d.DrawString(line)
		}
	}
	return img
}

func drawTile(img *image.RGBA, px []float32, w, h, scale, x0, y0 int) {
	if len(px) != w*h {
		draw.Draw(img, image.Rect(x0, y0, x0+w*scale, y0+h*scale), image.NewUniform(gridBadTile), image.Point{}, draw.Src)
		return
	}
	for y := 0; y < h*scale; y++ {
		for x := 0; x < w*scale; x++ {
			v := toByte(px[(y/scale)*w+x/scale])
			off := img.PixOffset(x0+x, y0+y)
			img.Pix[off], img.Pix[off+1], img.Pix[off+2], img.Pix[off+3] = v, v, v, 0xFF
		}
	}
}

// toByte maps [0,1] to 0..255 with clamping; NaN maps to 0.
func toByte(v float32) uint8 {
	if !(v > 0) {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(math.Round(float64(v) * 255))
}

// wrapText breaks s into lines no wider than width pixels, greedily at
// spaces; a word wider than a whole line is split between characters.
func wrapText(face font.Face, s string, width int) []string {
	fits := func(t string) bool { return font.MeasureString(face, t).Ceil() <= width }
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		if cur != "" && fits(cur+" "+word) {
			cur += " " + word
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
			cur = ""
		}
		for word != "" && !fits(word) {
			// Take the longest prefix that fits, at least one rune so that
			// a tile narrower than one glyph still terminates.
			runes := []rune(word)
			k := 1
			for k < len(runes) && fits(string(runes[:k+1])) {
				k++
			}
			lines = append(lines, string(runes[:k]))
			word = string(runes[k:])
		}
		cur = word
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// WritePNG encodes img as PNG and writes it atomically.
func WritePNG(path string, img image.Image) error {
	if img == nil {
		return fmt.Errorf("write %s: nil image", path)
	}
	if r, ok := img.(*image.RGBA); ok && r == nil {
		return fmt.Errorf("write %s: nil image", path)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeAtomic(path, buf.Bytes())
}
