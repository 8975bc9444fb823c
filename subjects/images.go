package subjects

import (
	"bytes"
	"context"
	"fmt"
	"image/png"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/scene"
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
	side := images.DefaultLimits()
	return Limits{MaxImages: 8, MaxImageBytes: 8 << 20, MaxTotalBytes: 24 << 20, MinSide: side.MinSide, MaxSide: side.MaxSide, MaxNameLen: 100}
}

// Reference is a validated reference image: the original re-encoded as PNG (stored as is when it was a
// PNG already) and the model's canvas made from it.
type Reference struct {
	Format        string // png or jpeg, as uploaded
	Width, Height int
	PNG           []byte
	Canvas        [scene.CanvasPixels]uint8
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

// Decode validates one upload (images.Limits.Decode) and keeps its original as PNG.
func (l Limits) Decode(ctx context.Context, i int, u cachet.Upload) (*Reference, error) {
	name := u.Filename
	if name == "" {
		name = "unnamed"
	}
	d, err := images.Limits{MinSide: l.MinSide, MaxSide: l.MaxSide}.DecodeContext(ctx, fmt.Sprintf("image %d (%s)", i, name), u.Data)
	if err != nil {
		return nil, err
	}
	ref := &Reference{Format: d.Format, Width: d.Width, Height: d.Height, PNG: u.Data, Canvas: d.Canvas}
	if d.Format != "png" {
		var buf bytes.Buffer
		if err := png.Encode(&buf, d.Image); err != nil {
			return nil, fmt.Errorf("subjects: re-encoding image %d as PNG: %w", i, err)
		}
		ref.PNG = buf.Bytes()
	}
	return ref, nil
}
