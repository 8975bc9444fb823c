package images_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/images/imagestest"
	"github.com/cachetlab/cachet/scene"
)

func TestDecodeValidates(t *testing.T) {
	l := images.DefaultLimits()
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, imagestest.Pattern(20, 20, 1), nil); err != nil {
		t.Fatal(err)
	}
	// A PNG header claiming 100000×100000 pixels: refused from its header, before any decoding.
	bomb := imagestest.PNG(t, imagestest.Pattern(16, 16, 1))
	copy(bomb[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(bomb[29:33], crc32.ChecksumIEEE(bomb[12:29])) // IHDR's CRC
	tests := []struct {
		name string
		data []byte
		want cachet.Code
	}{
		{"png", imagestest.PNG(t, imagestest.Pattern(40, 30, 2)), ""},
		{"jpeg", imagestest.JPEG(t, imagestest.Pattern(30, 40, 3)), ""},
		{"gif", gifBuf.Bytes(), cachet.CodeUnsupportedMedia},
		{"text", []byte("hello, not an image"), cachet.CodeUnsupportedMedia},
		{"empty", nil, cachet.CodeInvalidArgument},
		{"too small", imagestest.PNG(t, imagestest.Pattern(4, 40, 1)), cachet.CodeInvalidArgument},
		{"decoded size too large", bomb, cachet.CodePayloadTooLarge},
		{"truncated png", imagestest.PNG(t, imagestest.Pattern(40, 40, 1))[:60], cachet.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := l.Decode(tc.name, tc.data)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := images.ToCanvas(d.Image); d.Canvas != want {
					t.Fatal("Decode's canvas differs from ToCanvas of its image")
				}
				return
			}
			if got := cachet.CodeOf(err); got != tc.want {
				t.Fatalf("Decode = %v (code %s), want %s", err, got, tc.want)
			}
		})
	}
}

func TestToCanvas(t *testing.T) {
	// A 32×32 image is a canvas already: only made grayscale.
	canvas := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range canvas.Pix {
		canvas.Pix[i] = uint8(i * 7)
	}
	if got := images.ToCanvas(canvas); !bytes.Equal(got[:], canvas.Pix) {
		t.Fatal("a 32×32 grayscale image changed")
	}
	// A 28×28 item is rendered exactly as the canonical scene.
	item := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range item.Pix {
		item.Pix[i] = uint8((i * 13) % 200)
	}
	item.Pix[0], item.Pix[27] = 0, 0
	want, err := scene.Render((*[scene.ItemPixels]uint8)(item.Pix), scene.Canonical(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := images.ToCanvas(item); got != want {
		t.Fatal("a 28×28 item is not rendered as the canonical scene")
	}
	// A dark item on a white, wide photo: light-on-dark, letterboxed, framed, centred.
	photo := image.NewRGBA(image.Rect(0, 0, 200, 100))
	for y := range 100 {
		for x := range 200 {
			c := color.RGBA{255, 255, 255, 255}
			if x > 80 && x < 120 && y > 30 && y < 70 {
				c = color.RGBA{20, 20, 20, 255}
			}
			photo.Set(x, y, c)
		}
	}
	got := images.ToCanvas(photo)
	at := func(x, y int) uint8 { return got[y*scene.CanvasSide+x] }
	if at(0, 0) != 0 || at(16, 4) != 0 || at(3, 16) > 10 || at(16, 16) < 200 {
		t.Fatalf("photo canvas: corner %d, letterbox %d, background %d, item %d", at(0, 0), at(16, 4), at(3, 16), at(16, 16))
	}
}
