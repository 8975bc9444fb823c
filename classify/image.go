package classify

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode

	xdraw "golang.org/x/image/draw"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
)

// MaxImageSide bounds a decoded image (a small header must not make us allocate gigabytes).
const MaxImageSide = 4096

// DecodeImage turns PNG or JPEG bytes into the 32×32 grayscale canvas the model sees: a 32×32 image is
// taken as a canvas; any other square image is an item, resized to 28×28 and drawn large and centred,
// as Fashion-MNIST items are (a 28×28 image is used as is).
func DecodeImage(data []byte) ([]uint8, error) {
	if len(data) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "empty image")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeUnsupportedMedia, err, "not a PNG or JPEG image")
	}
	switch {
	case cfg.Width > MaxImageSide || cfg.Height > MaxImageSide:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s image is %d×%d; at most %d×%d", format, cfg.Width, cfg.Height, MaxImageSide, MaxImageSide)
	case cfg.Width != cfg.Height:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s image is %d×%d; images must be square (a 28×28 item or a 32×32 canvas)", format, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "the %s image is corrupt", format)
	}
	if cfg.Width == dataset.CanvasSide {
		return gray(img, dataset.CanvasSide), nil
	}
	var item [dataset.ItemPixels]uint8
	copy(item[:], gray(img, dataset.ItemSide))
	return ItemCanvas(&item)
}

// gray converts img to side×side 8-bit grayscale, resizing when needed.
func gray(img image.Image, side int) []uint8 {
	dst := image.NewGray(image.Rect(0, 0, side, side))
	if b := img.Bounds(); b.Dx() == side && b.Dy() == side {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	} else {
		// Alpha is composited on black: Fashion-MNIST's background.
		draw.Draw(dst, dst.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), img, b, xdraw.Over, nil)
	}
	return dst.Pix
}
