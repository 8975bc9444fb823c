package scene

// Render draws item into a CanvasSide×CanvasSide canvas as s describes (see the package comment). It is
// pure integer arithmetic, so every platform renders the same bytes.
func Render(item *[ItemPixels]uint8, s Scene) ([CanvasPixels]uint8, error) {
	var canvas [CanvasPixels]uint8
	if err := s.Validate(); err != nil {
		return canvas, err
	}
	src := item[:]
	if s.Mirrored {
		var flipped [ItemPixels]uint8
		mirror(flipped[:], src, ItemSide)
		src = flipped[:]
	}
	x0, y0, side := s.Box()
	box := src
	var boxBuf [SmallSide * SmallSide]uint8
	if side != ItemSide {
		// The area filter is symmetric under a left↔right flip, so mirroring before or after
		// shrinking gives the same pixels.
		box = boxBuf[:]
		resizeArea(box, side, src, ItemSide)
	}
	for y := range side {
		copy(canvas[(y0+y)*CanvasSide+x0:], box[y*side:(y+1)*side])
	}
	if s.Inverted {
		invert(canvas[:])
	}
	return canvas, nil
}

// Derender undoes Render as far as it can: it un-inverts, crops the item's box, resizes it back to
// ItemSide×ItemSide and un-mirrors it, so a classifier trained on real items can judge a generated one
// and its identity can be compared with the reference item. For a large scene it is exact; a small
// item comes back blurred by the 28→16→28 round trip (≈ 15 grey levels from the original per pixel on
// average over the test split; the area filter beat bilinear, ≈ 16, for growing back too).
func Derender(img *[CanvasPixels]uint8, s Scene) ([ItemPixels]uint8, error) {
	var item [ItemPixels]uint8
	if err := s.Validate(); err != nil {
		return item, err
	}
	x0, y0, side := s.Box()
	box := make([]uint8, side*side)
	for y := range side {
		copy(box[y*side:(y+1)*side], img[(y0+y)*CanvasSide+x0:])
	}
	if s.Inverted {
		invert(box)
	}
	if side == ItemSide {
		copy(item[:], box)
	} else {
		resizeArea(item[:], ItemSide, box, side)
	}
	if s.Mirrored {
		var flipped [ItemPixels]uint8
		mirror(flipped[:], item[:], ItemSide)
		item = flipped
	}
	return item, nil
}

func invert(p []uint8) {
	for i, v := range p {
		p[i] = 255 - v
	}
}

// mirror writes src (side×side) flipped left↔right into dst.
func mirror(dst, src []uint8, side int) {
	for y := range side {
		row := y * side
		for x := range side {
			dst[row+x] = src[row+side-1-x]
		}
	}
}

// resizeArea resizes src (n×n) to dst (m×m) by area averaging ("pixel mixing"): each output pixel is
// the mean of the source area it covers, weighted by exact overlap. In units where a source pixel is m
// long and an output pixel n long, every overlap is an integer, so the filter is exact and
// platform-independent. For shrinking it is the right filter: thin strokes (straps, seams) survive as
// fainter lines instead of vanishing, and a zero background stays exactly zero, which keeps every
// small box's outside pure background.
func resizeArea(dst []uint8, m int, src []uint8, n int) {
	w := weightsFor(m, n)
	var buf [ItemSide * ItemSide]int // on the stack for the sizes Render and Derender use
	tmp := buf[:0]
	if m*n <= len(buf) {
		tmp = buf[:m*n] // rows resized, columns not yet
	} else {
		tmp = make([]int, m*n)
	}
	for y := range n {
		for ox := range m {
			sum := 0
			for _, t := range w[ox] {
				sum += t.w * int(src[y*n+t.i])
			}
			tmp[y*m+ox] = sum
		}
	}
	denom := n * n
	for oy := range m {
		for ox := range m {
			sum := 0
			for _, t := range w[oy] {
				sum += t.w * tmp[t.i*m+ox]
			}
			dst[oy*m+ox] = uint8((sum + denom/2) / denom)
		}
	}
}

type tap struct{ i, w int }

// The two resizes Render and Derender make, computed once.
var (
	shrinkTaps = areaWeights(SmallSide, ItemSide)
	growTaps   = areaWeights(ItemSide, SmallSide)
)

func weightsFor(m, n int) [][]tap {
	switch {
	case m == SmallSide && n == ItemSide:
		return shrinkTaps
	case m == ItemSide && n == SmallSide:
		return growTaps
	}
	return areaWeights(m, n)
}

// areaWeights gives, for each of m output pixels, the source pixels (of n) it overlaps and by how much;
// each output's weights sum to n.
func areaWeights(m, n int) [][]tap {
	w := make([][]tap, m)
	for o := range m {
		lo, hi := o*n, (o+1)*n // output pixel o in units of 1/(m·n) of the side
		for i := lo / m; i < n && i*m < hi; i++ {
			if ov := min(hi, (i+1)*m) - max(lo, i*m); ov > 0 {
				w[o] = append(w[o], tap{i, ov})
			}
		}
	}
	return w
}

// SmallView re-renders a reference canvas (a canonical render: the item large and centred) as the small
// scene at pos, with Render's own 28→16 area filter. Reference caches hold such views beside the canonical
// one: a small generated item covers about 2×2 of the canonical view's tokens, whose values attention can
// only average, while a small view has the detail the downscaled item keeps, at a small item's positions.
func SmallView(canvas *[CanvasPixels]uint8, pos Position) ([CanvasPixels]uint8, error) {
	item, err := Derender(canvas, Canonical(0))
	if err != nil {
		return [CanvasPixels]uint8{}, err
	}
	return Render(&item, Scene{Position: pos})
}
