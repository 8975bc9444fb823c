package images_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/images/imagestest"
)

// FuzzDecode: any bytes either decode within the limits or are refused with a domain 4xx error, never a
// panic, and a small input never takes long (testdata/fuzz/FuzzDecode holds crafted headers: bombs,
// truncations, odd colour models).
func FuzzDecode(f *testing.F) {
	f.Add(imagestest.PNG(f, imagestest.Pattern(20, 12, 1)))
	f.Add(imagestest.PNG(f, image.NewGray16(image.Rect(0, 0, 9, 9))))
	f.Add(imagestest.PNG(f, image.NewPaletted(image.Rect(0, 0, 12, 8), []color.Color{color.White, color.Black})))
	f.Add(imagestest.JPEG(f, imagestest.Pattern(16, 24, 2)))
	f.Add(imagestest.JPEG(f, image.NewGray(image.Rect(0, 0, 8, 8))))
	f.Add(imagestest.ZeroPNG(f, 16, 16, 16, 6, true))
	f.Add(imagestest.FlatJPEG{Width: 16, Height: 16, Components: 3, Progressive: true}.Encode())
	f.Add(imagestest.FlatJPEG{Width: 16, Height: 16, Components: 4}.Encode())
	l := images.DefaultLimits()
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		d, err := l.DecodeContext(context.Background(), "input", data)
		elapsed := time.Since(start)
		if err == nil {
			if d.Width < l.MinSide || d.Height < l.MinSide || d.Width > l.MaxSide || d.Height > l.MaxSide {
				t.Fatalf("decoded %d×%d outside the limits", d.Width, d.Height)
			}
			if b := d.Image.Bounds(); b.Dx() != d.Width || b.Dy() != d.Height {
				t.Fatalf("decoded image %v for a %d×%d header", b, d.Width, d.Height)
			}
		} else {
			var de *cachet.Error
			if !errors.As(err, &de) {
				t.Fatalf("not a domain error: %v", err)
			}
			switch de.Code {
			case cachet.CodeInvalidArgument, cachet.CodePayloadTooLarge, cachet.CodeUnsupportedMedia:
			default:
				t.Fatalf("code %s: %v", de.Code, err)
			}
		}
		// MaxPixelsPerByte bounds the work to tens of microseconds a byte. A slow run is timed twice more
		// and the fastest counts: the fuzzing workers share the CPUs with GC and each other.
		const limit = 100 * time.Millisecond
		for retry := 0; len(data) <= 512 && elapsed > limit && retry < 2; retry++ {
			start := time.Now()
			_, _ = l.DecodeContext(context.Background(), "input", data)
			elapsed = min(elapsed, time.Since(start))
		}
		if len(data) <= 512 && elapsed > limit {
			t.Fatalf("%d bytes took %v", len(data), elapsed)
		}
	})
}
