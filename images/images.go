// Package images validates uploaded images and turns them into the model's 32×32 grayscale canvas. Subject
// references and classification inputs go through the same decoder, so the model sees both the same way.
package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"strings"

	"golang.org/x/image/draw"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
)

// Limits bound a decoded image, checked from its header before decoding, so a small file that claims a
// huge image is refused without allocating it.
type Limits struct {
	MinSide, MaxSide int // pixels
	// MaxDecodedBytes bounds the memory one decode holds (0: DefaultMaxDecodedBytes).
	MaxDecodedBytes int64
	// Budget is shared with concurrent decodes (nil: SharedBudget).
	Budget *Budget
}

// DefaultLimits: 8…4096 pixels a side, DefaultMaxDecodedBytes, the shared budget.
func DefaultLimits() Limits {
	return Limits{MinSide: 8, MaxSide: 4096, MaxDecodedBytes: DefaultMaxDecodedBytes}
}

// Decoded is a validated image and the canvas made from it.
type Decoded struct {
	Format        string // png or jpeg, by content
	Width, Height int
	Image         image.Image
	Canvas        [scene.CanvasPixels]uint8
}

// Decode is DecodeContext without a deadline: it waits for budget as long as it takes.
func (l Limits) Decode(what string, data []byte) (*Decoded, error) {
	return l.DecodeContext(context.Background(), what, data)
}

// DecodeContext validates PNG or JPEG bytes and converts them (ToCanvas). what names the image in errors
// ("image 2 (shoe.png)"). Everything the header shows to be too large or damaged is refused before
// anything is allocated; then it waits, while ctx lives, for the decoded bytes from the budget, which it
// holds until the canvas is made (a caller keeping Decoded.Image holds that memory outside the budget).
func (l Limits) DecodeContext(ctx context.Context, what string, data []byte) (*Decoded, error) {
	if len(data) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is empty", what)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) || (format != "png" && format != "jpeg") {
		return nil, cachet.Errorf(cachet.CodeUnsupportedMedia, "%s is %s; send PNG or JPEG", what, sniff(data))
	}
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "%s is not a readable %s: %v", what, format, err)
	}
	if cfg.Width > l.MaxSide || cfg.Height > l.MaxSide {
		return nil, cachet.Errorf(cachet.CodePayloadTooLarge, "%s is %d×%d pixels; at most %d×%d are accepted", what, cfg.Width, cfg.Height, l.MaxSide, l.MaxSide)
	}
	if cfg.Width < l.MinSide || cfg.Height < l.MinSide {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is %d×%d pixels; it needs at least %d×%d", what, cfg.Width, cfg.Height, l.MinSide, l.MinSide)
	}
	c := decodeCost(format, cfg, data)
	if limit := l.maxDecodedBytes(); c.bytes > limit {
		return nil, cachet.Errorf(cachet.CodePayloadTooLarge, "%s (%d×%d pixels, %s) needs %s to decode; at most %s are accepted: scale it down, or save it as a non-interlaced 8-bit PNG or a baseline JPEG",
			what, cfg.Width, cfg.Height, c.kind, mib(c.bytes), mib(limit))
	}
	if int64(len(data)) < c.minData {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is a damaged %s: %d bytes cannot hold %d×%d pixels", what, format, len(data), cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > MaxPixelsPerByte*int64(len(data)) {
		return nil, cachet.Errorf(cachet.CodePayloadTooLarge, "%s declares %d×%d pixels in %d bytes, more than %d pixels a byte, as decompression bombs do: scale it down",
			what, cfg.Width, cfg.Height, len(data), MaxPixelsPerByte)
	}
	b := l.Budget
	if b == nil {
		b = shared
	}
	held, err := b.acquire(ctx, c.bytes)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, cachet.Wrap(cachet.CodeCanceled, err, "%s: the request was canceled while it waited to be decoded", what)
		}
		return nil, cachet.Wrap(cachet.CodeUnavailable, err, "%s: the server is busy decoding other images; retry shortly", what)
	}
	defer b.release(held)
	var img image.Image
	if format == "png" {
		img, err = png.Decode(bytes.NewReader(data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "%s is a damaged %s: %v", what, format, err)
	}
	return &Decoded{Format: format, Width: cfg.Width, Height: cfg.Height, Image: img, Canvas: ToCanvas(img)}, nil
}

func (l Limits) maxDecodedBytes() int64 {
	if l.MaxDecodedBytes > 0 {
		return l.MaxDecodedBytes
	}
	return DefaultMaxDecodedBytes
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func sniff(data []byte) string {
	t := http.DetectContentType(data)
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	return t
}

// ToCanvas turns any image into the model's 32×32 grayscale canvas:
//   - a 32×32 image is taken as a canvas already (a scene as the model draws them), only made grayscale;
//   - anything else is an item photo: grayscale (ITU-R 601 luma, transparency over black), scaled with
//     Catmull-Rom to fit 28×28 keeping its aspect ratio, made light-on-dark like Fashion-MNIST when its
//     border is light (a product on a white background), centred on black, and rendered as the canonical
//     scene (large, centred, upright, not inverted) — how the adapters saw references in training and how
//     classification sees Fashion-MNIST items.
func ToCanvas(img image.Image) [scene.CanvasPixels]uint8 {
	b := img.Bounds()
	if b.Dx() == scene.CanvasSide && b.Dy() == scene.CanvasSide {
		g := toGray(img, scene.CanvasSide, scene.CanvasSide)
		return [scene.CanvasPixels]uint8(g.Pix)
	}
	w, h := itemFit(b.Dx(), b.Dy())
	fit := toGray(img, w, h)
	if borderMean(fit) > 127 {
		for i, v := range fit.Pix {
			fit.Pix[i] = 255 - v
		}
	}
	var item [scene.ItemPixels]uint8
	x0, y0 := (scene.ItemSide-w)/2, (scene.ItemSide-h)/2
	for y := range h {
		copy(item[(y0+y)*scene.ItemSide+x0:], fit.Pix[y*fit.Stride:y*fit.Stride+w])
	}
	canvas, err := scene.Render(&item, scene.Canonical(0))
	if err != nil { // the canonical scene is valid by construction
		return [scene.CanvasPixels]uint8{}
	}
	return canvas
}

// itemFit is the size a w×h image scales to when its longer side becomes the item's side.
func itemFit(w, h int) (int, int) {
	switch {
	case w > h:
		return scene.ItemSide, max(1, (h*scene.ItemSide+w/2)/w)
	case h > w:
		return max(1, (w*scene.ItemSide+h/2)/h), scene.ItemSide
	}
	return scene.ItemSide, scene.ItemSide
}

// toGray scales img to w×h over a black background and converts it to grayscale.
func toGray(img image.Image, w, h int) *image.Gray {
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(rgba, rgba.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
	if img.Bounds().Dx() == w && img.Bounds().Dy() == h {
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Over)
	} else {
		draw.CatmullRom.Scale(rgba, rgba.Bounds(), img, img.Bounds(), draw.Over, nil)
	}
	g := image.NewGray(rgba.Bounds())
	draw.Draw(g, g.Bounds(), rgba, image.Point{}, draw.Src)
	return g
}

func borderMean(g *image.Gray) float64 {
	w, h := g.Bounds().Dx(), g.Bounds().Dy()
	var sum, n float64
	for y := range h {
		for x := range w {
			if x == 0 || y == 0 || x == w-1 || y == h-1 {
				sum += float64(g.Pix[y*g.Stride+x])
				n++
			}
		}
	}
	return sum / n
}
