package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// goRegular is parsed once; faces are made per plot because opentype faces
// keep scratch buffers and are not safe for concurrent use.
var goRegular = sync.OnceValues(func() (*opentype.Font, error) {
	return opentype.Parse(goregular.TTF)
})

func newFace(size float64) (font.Face, error) {
	f, err := goRegular()
	if err != nil {
		return nil, fmt.Errorf("parse Go Regular: %w", err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("font face at %gpt: %w", size, err)
	}
	return face, nil
}

// canvas wraps an RGBA image with the few anti-aliased primitives a plot
// needs. Shapes are rasterised with x/image/vector, whose coverage is the
// clamped absolute winding sum: polygons are normalised to one orientation
// so that overlapping parts of one shape (a polyline's joints and caps) add
// up instead of cancelling.
type canvas struct {
	img *image.RGBA
	ras *vector.Rasterizer
}

func newCanvas(w, h int, bg color.Color) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return &canvas{img: img, ras: vector.NewRasterizer(w, h)}
}

type pt struct{ x, y float64 }

// polygon adds a closed polygon to the pending shape, counter-clockwise.
func (c *canvas) polygon(p []pt) {
	if len(p) < 3 {
		return
	}
	var area float64
	for i := range p {
		j := (i + 1) % len(p)
		area += p[i].x*p[j].y - p[j].x*p[i].y
	}
	if area < 0 {
		q := make([]pt, len(p))
		for i := range p {
			q[i] = p[len(p)-1-i]
		}
		p = q
	}
	c.ras.MoveTo(float32(p[0].x), float32(p[0].y))
	for _, v := range p[1:] {
		c.ras.LineTo(float32(v.x), float32(v.y))
	}
	c.ras.ClosePath()
}

func (c *canvas) circle(cx, cy, r float64) {
	const n = 24
	p := make([]pt, n)
	for i := range p {
		a := 2 * math.Pi * float64(i) / n
		p[i] = pt{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	c.polygon(p)
}

// polyline adds a stroked polyline of the given width with round joins.
func (c *canvas) polyline(p []pt, width float64) {
	hw := width / 2
	for i := 0; i+1 < len(p); i++ {
		a, b := p[i], p[i+1]
		dx, dy := b.x-a.x, b.y-a.y
		l := math.Hypot(dx, dy)
		if l == 0 {
			continue
		}
		nx, ny := -dy/l*hw, dx/l*hw
		c.polygon([]pt{{a.x + nx, a.y + ny}, {b.x + nx, b.y + ny}, {b.x - nx, b.y - ny}, {a.x - nx, a.y - ny}})
	}
	for _, v := range p {
		c.circle(v.x, v.y, hw)
	}
}

// fill draws the pending shape in col and clears it.
func (c *canvas) fill(col color.Color) {
	b := c.img.Bounds()
	c.ras.Draw(c.img, b, image.NewUniform(col), image.Point{})
	c.ras.Reset(b.Dx(), b.Dy())
}

// rect fills a pixel-aligned rectangle; used for crisp axes and grid lines.
func (c *canvas) rect(r image.Rectangle, col color.Color) {
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Over)
}

// textBox is the pixel rectangle a string occupies with its left end of the
// baseline at (x, y).
func textBox(face font.Face, s string, x, y int) image.Rectangle {
	m := face.Metrics()
	w := font.MeasureString(face, s).Ceil()
	return image.Rect(x, y-m.Ascent.Ceil(), x+w, y+m.Descent.Ceil())
}

// text draws s with the left end of its baseline at (x, y).
func (c *canvas) text(face font.Face, s string, x, y int, col color.Color) {
	d := &font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// textVertical draws s rotated 90° counter-clockwise (reading bottom to
// top), centred on (cx, cy): rendered upright into a scratch image, then
// copied with the axes swapped.
func (c *canvas) textVertical(face font.Face, s string, cx, cy int, col color.Color) {
	box := textBox(face, s, 0, face.Metrics().Ascent.Ceil())
	w, h := box.Dx(), box.Dy()
	if w == 0 || h == 0 {
		return
	}
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	d := &font.Drawer{Dst: tmp, Src: image.NewUniform(col), Face: face, Dot: fixed.P(0, face.Metrics().Ascent.Ceil())}
	d.DrawString(s)
	rot := image.NewRGBA(image.Rect(0, 0, h, w))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			rot.Set(y, w-1-x, tmp.At(x, y))
		}
	}
	dst := image.Rect(cx-h/2, cy-w/2, cx-h/2+h, cy-w/2+w)
	draw.Draw(c.img, dst, rot, image.Point{}, draw.Over)
}
