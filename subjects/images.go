package subjects

import (
	"bytes"
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
	"github.com/cachetlab/cachet/dataset"
)

// Limits bound what an upload may hold. Each violation has its own clear 4xx error.
type Limits struct {
	MaxImages     int   // references per subject
	MaxImageBytes int64 // one encoded image
	MaxTotalBytes int64 // all encoded images together
	MinSide       int   // decoded width and height, pixels
	MaxSide       int
	MaxNameLen    int
}

// DefaultLimits: 1–8 images of at most 8 MiB each and 24 MiB together, 8…4096 pixels a side.
func DefaultLimits() Limits {
	return Limits{MaxImages: 8, MaxImageBytes: 8 << 20, MaxTotalBytes: 24 << 20, MinSide: 8, MaxSide: 4096, MaxNameLen: 100}
}

// Reference is a validated reference image: the original re-encoded as PNG (stored as is when it was a
// PNG already) and the model's canvas made from it.
type Reference struct {
	Format        string // png or jpeg, as uploaded
	Width, Height int
	PNG           []byte
	Canvas        [dataset.CanvasPixels]uint8
}

// CheckCount validates the number of images and their total size before any is decoded.
func (l Limits) CheckCount(uploads []cachet.Upload) error {
	if len(uploads) == 0 {
		return cachet.Errorf(cachet.CodeInvalidArgument, "no images: upload 1 to %d reference images (PNG or JPEG) in the 'images' field", l.MaxImages)
	}
	if len(uploads) > l.MaxImages {
		return cachet.Errorf(cachet.CodeInvalidArgument, "%d images: a subject takes 1 to %d reference images", len(uploads), l.MaxImages)
	}
	var total int64
	for i, u := range uploads {
		if int64(len(u.Data)) > l.MaxImageBytes {
			return cachet.Errorf(cachet.CodePayloadTooLarge, "image %d (%s) has %d bytes; each image may have at most %d", i, u.Filename, len(u.Data), l.MaxImageBytes)
		}
		total += int64(len(u.Data))
	}
	if total > l.MaxTotalBytes {
		return cachet.Errorf(cachet.CodePayloadTooLarge, "the images have %d bytes together; at most %d are accepted", total, l.MaxTotalBytes)
	}
	return nil
}

// Decode validates one upload (format by content, decoded size checked before decoding, so a small file
// that claims a huge image is refused without allocating it) and converts it to the model's canvas.
func (l Limits) Decode(i int, u cachet.Upload) (*Reference, error) {
	name := u.Filename
	if name == "" {
		name = "unnamed"
	}
	if len(u.Data) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "image %d (%s) is empty", i, name)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(u.Data))
	if errors.Is(err, image.ErrFormat) || (format != "png" && format != "jpeg") {
		return nil, cachet.Errorf(cachet.CodeUnsupportedMedia, "image %d (%s) is %s; upload PNG or JPEG", i, name, sniff(u.Data))
	}
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "image %d (%s) is not a readable %s: %v", i, name, format, err)
	}
	if cfg.Width > l.MaxSide || cfg.Height > l.MaxSide {
		return nil, cachet.Errorf(cachet.CodePayloadTooLarge, "image %d (%s) is %d×%d pixels; at most %d×%d are accepted", i, name, cfg.Width, cfg.Height, l.MaxSide, l.MaxSide)
	}
	if cfg.Width < l.MinSide || cfg.Height < l.MinSide {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "image %d (%s) is %d×%d pixels; it needs at least %d×%d", i, name, cfg.Width, cfg.Height, l.MinSide, l.MinSide)
	}
	var img image.Image
	if format == "png" {
		img, err = png.Decode(bytes.NewReader(u.Data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(u.Data))
	}
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "image %d (%s) is a damaged %s: %v", i, name, format, err)
	}
	ref := &Reference{Format: format, Width: cfg.Width, Height: cfg.Height, PNG: u.Data, Canvas: ToCanvas(img)}
	if format != "png" {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, fmt.Errorf("subjects: re-encoding image %d as PNG: %w", i, err)
		}
		ref.PNG = buf.Bytes()
	}
	return ref, nil
}

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
//     scene (large, centred, upright, not inverted) — exactly how the adapters saw references in training.
func ToCanvas(img image.Image) [dataset.CanvasPixels]uint8 {
	b := img.Bounds()
	if b.Dx() == dataset.CanvasSide && b.Dy() == dataset.CanvasSide {
		g := toGray(img, dataset.CanvasSide, dataset.CanvasSide)
		return [dataset.CanvasPixels]uint8(g.Pix)
	}
	w, h := dataset.ItemSide, dataset.ItemSide
	if b.Dx() > b.Dy() {
		h = max(1, (b.Dy()*dataset.ItemSide+b.Dx()/2)/b.Dx())
	} else if b.Dy() > b.Dx() {
		w = max(1, (b.Dx()*dataset.ItemSide+b.Dy()/2)/b.Dy())
	}
	fit := toGray(img, w, h)
	if borderMean(fit) > 127 {
		for i, v := range fit.Pix {
			fit.Pix[i] = 255 - v
		}
	}
	var item [dataset.ItemPixels]uint8
	x0, y0 := (dataset.ItemSide-w)/2, (dataset.ItemSide-h)/2
	for y := range h {
		copy(item[(y0+y)*dataset.ItemSide+x0:], fit.Pix[y*fit.Stride:y*fit.Stride+w])
	}
	canvas, err := dataset.Render(&item, dataset.Canonical(0))
	if err != nil { // the canonical scene is valid by construction
		return [dataset.CanvasPixels]uint8{}
	}
	return canvas
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

// ModelUnits maps a canvas to the model's input values (v/127.5 − 1).
func ModelUnits(c *[dataset.CanvasPixels]uint8) []float32 {
	out := make([]float32, len(c))
	for i, v := range c {
		out[i] = float32(v)/127.5 - 1
	}
	return out
}
