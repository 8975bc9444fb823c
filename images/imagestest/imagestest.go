// Package imagestest makes small encoded test images for upload tests.
package imagestest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
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

// ZeroPNG writes a valid w×h PNG of all-zero samples (depth bits, PNG colour type ctype, Adam7 when
// interlaced) without building the image: its pixel data compresses about 1000:1, so a small file
// declares a large image.
func ZeroPNG(t testing.TB, w, h int, depth, ctype byte, interlaced bool) []byte {
	t.Helper()
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, depth, ctype, 0, 0, 0)
	if interlaced {
		ihdr[12] = 1
	}
	writeChunk(&out, "IHDR", ihdr)
	if ctype == 3 {
		writeChunk(&out, "PLTE", []byte{0, 0, 0, 255, 255, 255})
	}
	var idat bytes.Buffer
	z, err := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	// Adam7's passes (x0, y0, dx, dy); one pass of every pixel when not interlaced.
	passes := [][4]int{{0, 0, 1, 1}}
	if interlaced {
		passes = [][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	}
	row := make([]byte, 1+(w*int(depth)*channels+7)/8)
	for _, p := range passes {
		pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
		if pw <= 0 || ph <= 0 {
			continue
		}
		for range ph {
			if _, err := z.Write(row[:1+(pw*int(depth)*channels+7)/8]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	writeChunk(&out, "IDAT", idat.Bytes())
	writeChunk(&out, "IEND", nil)
	return out.Bytes()
}

func writeChunk(b *bytes.Buffer, typ string, data []byte) {
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	b.WriteString(typ)
	b.Write(data)
	b.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
}

// FlatJPEG describes a JPEG of flat grey blocks.
type FlatJPEG struct {
	Width, Height, Components int  // 1, 3 or 4 (CMYK) components, none subsampled
	Progressive               bool // a single DC scan, whose decoding keeps every block's coefficients
	RGB                       bool // three components named R, G and B: decoded into a new RGBA image
}

// Encode writes the JPEG with Huffman tables of a single 1-bit code each (a zero DC difference, an
// end of block): a bit or two a block, so a small file declares a large image.
func (j FlatJPEG) Encode() []byte {
	var b bytes.Buffer
	segment := func(marker byte, body []byte) {
		b.Write([]byte{0xff, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)})
		b.Write(body)
	}
	b.Write([]byte{0xff, 0xd8})
	if j.Components == 4 { // image/jpeg needs Adobe's APP14 to read four components: transform 0, CMYK
		segment(0xee, []byte("Adobe\x00\x64\x00\x00\x00\x00\x00"))
	}
	sof, marker := []byte{8, byte(j.Height >> 8), byte(j.Height), byte(j.Width >> 8), byte(j.Width), byte(j.Components)}, byte(0xc0)
	if j.Progressive {
		marker = 0xc2
	}
	for i := range j.Components {
		id := byte(i + 1)
		if j.RGB {
			id = "RGB"[i]
		}
		sof = append(sof, id, 0x11, 0)
	}
	segment(marker, sof)
	table := func(class byte) []byte { return append(append([]byte{class, 1}, make([]byte, 15)...), 0) }
	segment(0xc4, append(table(0x00), table(0x10)...))
	sos := []byte{byte(j.Components)}
	for i := range j.Components {
		sos = append(sos, sof[6+3*i], 0)
	}
	bits := 2 // DC and end of block
	if j.Progressive {
		sos, bits = append(sos, 0, 0, 0), 1
	} else {
		sos = append(sos, 0, 63, 0)
	}
	segment(0xda, sos)
	blocks := (j.Width + 7) / 8 * ((j.Height + 7) / 8) * j.Components
	b.Write(make([]byte, (bits*blocks+7)/8))
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// WithChunk inserts a chunk (e.g. "tRNS") into a PNG just before its first IDAT.
func WithChunk(t testing.TB, png []byte, typ string, data []byte) []byte {
	t.Helper()
	i := bytes.Index(png, []byte("IDAT"))
	if i < 4 {
		t.Fatal("no IDAT chunk")
	}
	var b bytes.Buffer
	b.Write(png[:i-4])
	writeChunk(&b, typ, data)
	b.Write(png[i-4:])
	return b.Bytes()
}
