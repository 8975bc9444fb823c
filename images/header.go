package images

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"

	"github.com/cachetlab/cachet/scene"
)

// cost is what decoding an image will take, read from its header before anything is decoded.
type cost struct {
	bytes   int64  // the most memory the decoder holds at once
	minData int64  // the fewest encoded bytes that can hold the declared pixels
	kind    string // "16-bit RGBA PNG", "progressive JPEG": for messages
}

// maxDeflateRatio is deflate's largest expansion (a 258-byte match in two bits), so a PNG's pixel data
// needs at least 1/1032 of its size in compressed bytes: a small file that claims more is truncated.
const maxDeflateRatio = 1032

// decodeCost reads the cost of decoding data, whose config image.DecodeConfig read as format, and
// making its canvas: Catmull-Rom scaling keeps a [4]float64 for each of ItemSide columns by the source's
// rows.
func decodeCost(format string, cfg image.Config, data []byte) cost {
	w, h := int64(cfg.Width), int64(cfg.Height)
	var c cost
	if format == "png" {
		c = pngCost(cfg, w, h, data)
	} else {
		c = jpegCost(cfg, w, h, data)
	}
	c.bytes += 32 * scene.ItemSide * h
	return c
}

var pngColorTypes = map[byte]struct {
	name     string
	channels int64
}{0: {"gray", 1}, 2: {"RGB", 3}, 3: {"paletted", 1}, 4: {"gray+alpha", 2}, 6: {"RGBA", 4}}

// pngCost: the decoded image at the colour model's bytes per pixel (image/png widens gray and RGB with a
// tRNS chunk to NRGBA or NRGBA64, which DecodeConfig does not say). An interlaced PNG holds each pass's
// image besides the whole one, up to twice as much.
func pngCost(cfg image.Config, w, h int64, data []byte) cost {
	var depth, ctype byte = 16, 6 // unknown: the widest
	interlaced, transparent := false, false
	for off := 8; off+8 <= len(data); {
		n, typ := int64(binary.BigEndian.Uint32(data[off:])), string(data[off+4:off+8])
		body := data[off+8 : min(int64(len(data)), int64(off)+8+n)]
		switch typ {
		case "IHDR":
			if len(body) >= 13 {
				depth, ctype, interlaced = body[8], body[9], body[12] == 1
			}
		case "tRNS":
			transparent = true
		}
		if typ == "IDAT" || int64(off)+12+n > int64(len(data)) {
			break
		}
		off += 12 + int(n)
	}
	per := int64(8)
	switch cfg.ColorModel {
	case color.GrayModel:
		per = 1
		if transparent {
			per = 4
		}
	case color.Gray16Model:
		per = 2
		if transparent {
			per = 8
		}
	case color.RGBAModel, color.NRGBAModel:
		per = 4
	default:
		if _, ok := cfg.ColorModel.(color.Palette); ok {
			per = 1
		}
	}
	c := cost{bytes: w * h * per}
	ct, ok := pngColorTypes[ctype]
	if !ok {
		ct.name, ct.channels = "?", 4
	}
	c.kind = fmt.Sprintf("%d-bit %s PNG", depth, ct.name)
	if interlaced {
		c.bytes *= 2
		c.kind = "interlaced " + c.kind
	}
	c.minData = w * h * int64(depth) * ct.channels / 8 / maxDeflateRatio
	return c
}

type jpegComponent struct{ id, h, v byte }

// jpegHeader is what a JPEG's markers say about its decoding.
type jpegHeader struct {
	sof         bool
	progressive bool
	comps       []jpegComponent
	adobeRGB    bool // an Adobe APP14 segment says the components are RGB
}

// readJPEGHeader walks data's markers as image/jpeg does (tolerating fill bytes and stray data between
// segments, skipping entropy-coded data). Only the first frame counts: image/jpeg refuses a second.
func readJPEGHeader(data []byte) jpegHeader {
	var hd jpegHeader
	for i := 2; i+1 < len(data); {
		if data[i] != 0xff {
			i++
			continue
		}
		m := data[i+1]
		i += 2
		if m == 0xff { // a fill byte: the marker follows
			i--
			continue
		}
		if m == 0 || m == 0x01 || (0xd0 <= m && m <= 0xd8) { // stuffing, TEM, RSTn, SOI: no length
			continue
		}
		if m == 0xd9 || i+2 > len(data) { // EOI
			break
		}
		n := int(data[i])<<8 | int(data[i+1])
		body := data[min(len(data), i+2):min(len(data), i+max(n, 2))]
		switch {
		case (m == 0xc0 || m == 0xc1 || m == 0xc2) && !hd.sof && len(body) >= 6:
			hd.sof, hd.progressive = true, m == 0xc2
			for k := range int(body[5]) {
				if len(body) < 6+3*k+3 {
					break
				}
				c := body[6+3*k:]
				hd.comps = append(hd.comps, jpegComponent{id: c[0], h: min(max(c[1]>>4, 1), 4), v: min(max(c[1]&15, 1), 4)})
			}
		case m == 0xee && len(body) >= 12 && string(body[:5]) == "Adobe":
			hd.adobeRGB = body[11] == 0
		}
		i += max(n, 2)
	}
	return hd
}

// jpegCost: image/jpeg decodes into planes padded to whole MCUs (a byte per sample); a progressive JPEG
// keeps every block's coefficients besides (64 int32s a block, four times the planes); CMYK and RGB
// JPEGs are converted into a new 4-byte-per-pixel image at the end. Every block of the first component
// (always full resolution) needs at least a bit of entropy-coded data (its DC code).
func jpegCost(cfg image.Config, w, h int64, data []byte) cost {
	hd := readJPEGHeader(data)
	comps := hd.comps
	if len(comps) == 1 { // image/jpeg ignores a single component's sampling factors
		comps = []jpegComponent{{id: comps[0].id, h: 1, v: 1}}
	}
	if len(comps) == 0 { // DecodeConfig found a frame this walk did not: assume the widest
		hd.progressive = true
		comps = []jpegComponent{{h: 1, v: 1}, {h: 1, v: 1}, {h: 1, v: 1}, {h: 1, v: 1}}
	}
	h0, v0 := int64(comps[0].h), int64(comps[0].v)
	mxx, myy := (w+8*h0-1)/(8*h0), (h+8*v0-1)/(8*v0)
	var planes int64
	for _, c := range comps {
		planes += 64 * mxx * myy * int64(c.h) * int64(c.v)
	}
	c := cost{bytes: planes, kind: "baseline JPEG", minData: (w + 7) / 8 * ((h + 7) / 8) / 8}
	if hd.progressive {
		c.bytes += 4 * planes
		c.kind = "progressive JPEG"
	}
	rgb := len(comps) == 3 && (hd.adobeRGB || cfg.ColorModel == color.RGBAModel ||
		(comps[0].id == 'R' && comps[1].id == 'G' && comps[2].id == 'B'))
	if len(comps) == 4 || rgb {
		c.bytes += 4 * w * h
	}
	return c
}
