package scene

import (
	"math"
	"slices"
)

// Observed is what Analyze reads off a canvas.
type Observed struct {
	Large    bool
	Position Position // Center for large items
	Inverted bool
	// Empty: no foreground was found (e.g. a blank generation); Large and Position are then
	// false and Center, and should not count as agreeing with any prompt.
	Empty bool
}

// Analyze thresholds, tuned on renders of every test-split item (TestAnalyzeEveryScene). The rendered
// populations are far apart — a small item's extent is ≤ 16 px, a large one's ≥ 24 px; a small box is
// 7 px off centre — so each cut sits midway, leaving room for the blur and noise of generated images.
const (
	// minContrast is the least brightness above the background that counts as foreground; below it
	// lie the faint halo pixels that make extents unstable. A noisy background raises the cut to
	// noiseFactor × (its 95th percentile − its median), ≈ 2.5σ for Gaussian noise.
	minContrast = 16
	noiseFactor = 1.5
	// minBlob: 8-connected foreground pieces smaller than this are noise, not item (an item's real
	// fragments are bigger, and dropping a tiny one moves the box by a pixel at most).
	minBlob = 4
	// largeExtent splits small (≤ SmallSide) from large (≈ ItemSide) by the foreground's longer side.
	largeExtent = 20
	// offCentre is how far (px) the foreground's midpoint must be from the canvas centre, along x or y,
	// to call a small item off-centre: half the 7 px between the centre box and an edge box.
	offCentre = 3.5
)

// Analyze reads size, position and inversion from a canvas with simple image statistics and nothing
// else (it knows nothing of the scene), so evaluation can check a generated image against its prompt:
//
//   - inversion: the outermost pixel ring is always background (every box keeps ≥ 1 px from the edge),
//     so its median brightness above or below mid-grey says which polarity the image has;
//   - foreground: after un-inverting, pixels brighter than the ring's median by minContrast (more on a
//     noisy ring), in 8-connected pieces of at least minBlob pixels. Median and percentile rather than
//     mean and σ, so one stray pixel on the ring cannot lift the cut above a faint item;
//   - size: the longer side of the foreground's bounding box against largeExtent;
//   - position: the bounding box's midpoint against the canvas centre. The midpoint, not the mass
//     centroid: items are centred in their box by extent, and their mass often is not (a shoe's sole,
//     a bag's handle), which put 1 % of centred small items past the off-centre cut on the centroid.
func Analyze(img *[CanvasPixels]uint8) Observed {
	ring := make([]int, 0, 4*CanvasSide-4)
	for i := range CanvasSide {
		ring = append(ring, int(img[i]), int(img[(CanvasSide-1)*CanvasSide+i]))
		if i > 0 && i < CanvasSide-1 {
			ring = append(ring, int(img[i*CanvasSide]), int(img[i*CanvasSide+CanvasSide-1]))
		}
	}
	slices.Sort(ring)
	var obs Observed
	// Inverted: the ring's median is above mid-grey (compared doubled, to stay in integers).
	obs.Inverted = ring[len(ring)/2-1]+ring[len(ring)/2] > 255
	if obs.Inverted {
		for i, v := range ring {
			ring[i] = 255 - v
		}
		slices.Reverse(ring)
	}
	level := ring[len(ring)/2]
	spread := ring[len(ring)*95/100] - level
	cut := level + max(minContrast, int(math.Ceil(noiseFactor*float64(spread))))

	var fg [CanvasPixels]bool
	for i, v := range img {
		f := int(v)
		if obs.Inverted {
			f = 255 - f
		}
		fg[i] = f > cut
	}
	x0, y0, x1, y1, ok := foregroundBox(&fg)
	if !ok {
		obs.Empty = true
		return obs
	}
	if max(x1-x0, y1-y0) > largeExtent {
		obs.Large = true
		return obs
	}
	// Twice the offsets of the box's midpoint from the canvas centre, in integers.
	dx, dy := x0+x1-CanvasSide, y0+y1-CanvasSide
	ax, ay := abs(dx), abs(dy)
	switch {
	case float64(max(ax, ay)) < 2*offCentre:
		obs.Position = Center
	case ax >= ay && dx < 0:
		obs.Position = Left
	case ax >= ay:
		obs.Position = Right
	case dy < 0:
		obs.Position = Top
	default:
		obs.Position = Bottom
	}
	return obs
}

func abs(v int) int { return max(v, -v) }

// foregroundBox is the bounding box [x0, x1) × [y0, y1) of the foreground pieces of at least minBlob
// pixels; ok is false when there are none.
func foregroundBox(fg *[CanvasPixels]bool) (x0, y0, x1, y1 int, ok bool) {
	x0, y0 = CanvasSide, CanvasSide
	var seen [CanvasPixels]bool
	stack := make([]int, 0, CanvasPixels)
	piece := make([]int, 0, CanvasPixels)
	for start := range CanvasPixels {
		if !fg[start] || seen[start] {
			continue
		}
		// Flood-fill one 8-connected piece.
		piece = piece[:0]
		stack = append(stack[:0], start)
		seen[start] = true
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			piece = append(piece, i)
			x, y := i%CanvasSide, i/CanvasSide
			for ny := max(y-1, 0); ny <= min(y+1, CanvasSide-1); ny++ {
				for nx := max(x-1, 0); nx <= min(x+1, CanvasSide-1); nx++ {
					if j := ny*CanvasSide + nx; fg[j] && !seen[j] {
						seen[j] = true
						stack = append(stack, j)
					}
				}
			}
		}
		if len(piece) < minBlob {
			continue
		}
		ok = true
		for _, i := range piece {
			x, y := i%CanvasSide, i/CanvasSide
			x0, x1, y0, y1 = min(x0, x), max(x1, x+1), min(y0, y), max(y1, y+1)
		}
	}
	return x0, y0, x1, y1, ok
}
