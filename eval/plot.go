package eval

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"strconv"

	"golang.org/x/image/font"
)

// Point is one configuration in a trade-off plot, e.g. a cache policy at
// (speed-up, PSNR).
type Point struct {
	Label string  `json:"label"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
}

// ParetoFront returns the indices of the points no other point dominates
// when both X and Y are to be maximised (q dominates p if q is at least as
// good on both axes and better on one), sorted by X ascending. Exact
// duplicates are all kept.
func ParetoFront(points []Point) []int {
	var front []int
	for i, p := range points {
		dominated := false
		for j, q := range points {
			if j != i && q.X >= p.X && q.Y >= p.Y && (q.X > p.X || q.Y > p.Y) {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, i)
		}
	}
	sort.SliceStable(front, func(a, b int) bool {
		pa, pb := points[front[a]], points[front[b]]
		if pa.X != pb.X {
			return pa.X < pb.X
		}
		return pa.Y > pb.Y
	})
	return front
}

// Plot geometry, in pixels, for a 900×600 figure.
const (
	plotW, plotH      = 900, 600
	plotLeft          = 90
	plotRight         = 30
	plotTop           = 60
	plotBottom        = 75
	pointRadius       = 5.0
	frontLineWidth    = 2.5
	labelOffset       = 8
	targetTicksX      = 8
	targetTicksY      = 6
	legendPad         = 8
	legendSwatchWidth = 28
)

var (
	colBackground = color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}
	colAxis       = color.RGBA{0x30, 0x30, 0x30, 0xFF}
	colGrid       = color.RGBA{0xE4, 0xE4, 0xE4, 0xFF}
	colText       = color.RGBA{0x20, 0x20, 0x20, 0xFF}
	colDominated  = color.RGBA{0x4C, 0x72, 0xB0, 0xFF} // muted blue
	colFront      = color.RGBA{0xD6, 0x4A, 0x1E, 0xFF} // orange-red
)

// ParetoPlot draws a 900×600 scatter plot of points, each labelled, with
// axes, ticks and numbers, and the Pareto frontier (maximal X and Y, see
// ParetoFront) as a line through its points, which are drawn in the
// frontier colour. Labels are placed beside their point where they collide
// least with other labels and points. Coordinates must be finite: cap or
// drop infinite PSNR before plotting.
func ParetoPlot(points []Point, xLabel, yLabel, title string) (image.Image, error) {
	if len(points) == 0 {
		return nil, errors.New("pareto plot: no points")
	}
	for _, p := range points {
		if math.IsNaN(p.X) || math.IsInf(p.X, 0) || math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
			return nil, fmt.Errorf("pareto plot: point %q at (%g, %g) is not finite", p.Label, p.X, p.Y)
		}
	}
	pl, err := newPlot(points)
	if err != nil {
		return nil, fmt.Errorf("pareto plot: %w", err)
	}
	pl.drawAxes()
	pl.drawTitles(xLabel, yLabel, title)
	front := ParetoFront(points)
	line := pl.drawPoints(points, front)
	pl.drawLabels(points, line)
	return pl.c.img, nil
}

// plot is a scatter plot being drawn: its canvas, fonts, plotting area and axes.
type plot struct {
	c                  *canvas
	title, axis, small font.Face
	area               image.Rectangle
	xt, yt             axisTicks
	px                 []pt // the points' pixels
}

func newPlot(points []Point) (*plot, error) {
	pl := &plot{c: newCanvas(plotW, plotH, colBackground), area: image.Rect(plotLeft, plotTop, plotW-plotRight, plotH-plotBottom)}
	var err error
	if pl.title, err = newFace(20); err != nil {
		return nil, err
	}
	if pl.axis, err = newFace(15); err != nil {
		return nil, err
	}
	if pl.small, err = newFace(13); err != nil {
		return nil, err
	}
	minX, maxX, minY, maxY := points[0].X, points[0].X, points[0].Y, points[0].Y
	for _, p := range points[1:] {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	pl.xt, pl.yt = niceAxis(minX, maxX, targetTicksX), niceAxis(minY, maxY, targetTicksY)
	for _, p := range points {
		pl.px = append(pl.px, pl.toPx(p.X, p.Y))
	}
	return pl, nil
}

func (pl *plot) toPx(x, y float64) pt {
	return pt{
		float64(pl.area.Min.X) + (x-pl.xt.lo)/(pl.xt.hi-pl.xt.lo)*float64(pl.area.Dx()),
		float64(pl.area.Max.Y) - (y-pl.yt.lo)/(pl.yt.hi-pl.yt.lo)*float64(pl.area.Dy()),
	}
}

// drawAxes draws the grid, the ticks with their values and the left and bottom spines.
func (pl *plot) drawAxes() {
	c, area := pl.c, pl.area
	tickLen := 5
	for _, v := range pl.xt.ticks {
		x := int(math.Round(pl.toPx(v, pl.yt.lo).x))
		c.rect(image.Rect(x, area.Min.Y, x+1, area.Max.Y), colGrid)
		c.rect(image.Rect(x, area.Max.Y, x+1, area.Max.Y+tickLen), colAxis)
		s := formatTick(v, pl.xt.step)
		w := font.MeasureString(pl.small, s).Ceil()
		c.text(pl.small, s, x-w/2, area.Max.Y+tickLen+15, colText)
	}
	for _, v := range pl.yt.ticks {
		y := int(math.Round(pl.toPx(pl.xt.lo, v).y))
		c.rect(image.Rect(area.Min.X, y, area.Max.X, y+1), colGrid)
		c.rect(image.Rect(area.Min.X-tickLen, y, area.Min.X, y+1), colAxis)
		s := formatTick(v, pl.yt.step)
		w := font.MeasureString(pl.small, s).Ceil()
		c.text(pl.small, s, area.Min.X-tickLen-4-w, y+5, colText)
	}
	c.rect(image.Rect(area.Min.X-1, area.Min.Y, area.Min.X, area.Max.Y+1), colAxis)
	c.rect(image.Rect(area.Min.X-1, area.Max.Y, area.Max.X, area.Max.Y+1), colAxis)
}

func (pl *plot) drawTitles(xLabel, yLabel, title string) {
	if title != "" {
		w := font.MeasureString(pl.title, title).Ceil()
		pl.c.text(pl.title, title, (plotW-w)/2, 34, colText)
	}
	if xLabel != "" {
		w := font.MeasureString(pl.axis, xLabel).Ceil()
		pl.c.text(pl.axis, xLabel, pl.area.Min.X+(pl.area.Dx()-w)/2, plotH-22, colText)
	}
	if yLabel != "" {
		pl.c.textVertical(pl.axis, yLabel, 22, pl.area.Min.Y+pl.area.Dy()/2, colText)
	}
}

// drawPoints draws the frontier's line, then the dominated points, then the frontier's on top; it
// returns the line's pixels.
func (pl *plot) drawPoints(points []Point, front []int) []pt {
	c := pl.c
	onFront := make(map[int]bool, len(front))
	line := make([]pt, len(front))
	for k, i := range front {
		onFront[i] = true
		line[k] = pl.px[i]
	}
	c.polyline(line, frontLineWidth)
	c.fill(colFront)
	for i := range points {
		if !onFront[i] {
			c.circle(pl.px[i].x, pl.px[i].y, pointRadius)
		}
	}
	c.fill(colDominated)
	for _, i := range front {
		c.circle(pl.px[i].x, pl.px[i].y, pointRadius)
	}
	c.fill(colFront)
	return line
}

// drawLabels places each point's label clear of the points, the frontier line, the legend and the
// labels placed before it.
func (pl *plot) drawLabels(points []Point, line []pt) {
	var obstacles []image.Rectangle
	for _, q := range pl.px {
		r := int(pointRadius) + 1
		obstacles = append(obstacles, image.Rect(int(q.x)-r, int(q.y)-r, int(q.x)+r+1, int(q.y)+r+1))
	}
	// The frontier line, sampled every few pixels.
	for k := 0; k+1 < len(line); k++ {
		a, b := line[k], line[k+1]
		steps := int(math.Hypot(b.x-a.x, b.y-a.y)/4) + 1
		for s := 0; s <= steps; s++ {
			f := float64(s) / float64(steps)
			x, y := int(a.x+f*(b.x-a.x)), int(a.y+f*(b.y-a.y))
			obstacles = append(obstacles, image.Rect(x-2, y-2, x+3, y+3))
		}
	}
	obstacles = append(obstacles, drawLegend(pl.c, pl.small, pl.area, pl.px))
	for i, p := range points {
		if p.Label == "" {
			continue
		}
		box := placeLabel(pl.small, p.Label, pl.px[i], pl.area, obstacles)
		obstacles = append(obstacles, box)
		pl.c.text(pl.small, p.Label, box.Min.X, box.Min.Y+pl.small.Metrics().Ascent.Ceil(), colText)
	}
}

// drawLegend puts the frontier legend in the plot corner holding the fewest
// points and returns its rectangle so labels avoid it.
func drawLegend(c *canvas, face font.Face, area image.Rectangle, px []pt) image.Rectangle {
	const text = "Pareto frontier (max x, max y)"
	tw := font.MeasureString(face, text).Ceil()
	m := face.Metrics()
	w := legendPad*3 + legendSwatchWidth + tw
	h := legendPad*2 + (m.Ascent + m.Descent).Ceil()
	corners := []image.Rectangle{
		image.Rect(area.Max.X-w-6, area.Min.Y+6, area.Max.X-6, area.Min.Y+6+h), // top right
		image.Rect(area.Min.X+6, area.Min.Y+6, area.Min.X+6+w, area.Min.Y+6+h), // top left
		image.Rect(area.Max.X-w-6, area.Max.Y-6-h, area.Max.X-6, area.Max.Y-6), // bottom right
		image.Rect(area.Min.X+6, area.Max.Y-6-h, area.Min.X+6+w, area.Max.Y-6), // bottom left
	}
	best, bestN := corners[0], math.MaxInt
	for _, r := range corners {
		n := 0
		grown := r.Inset(-40) // keep clear of labels beside nearby points too
		for _, q := range px {
			if image.Pt(int(q.x), int(q.y)).In(grown) {
				n++
			}
		}
		if n < bestN {
			best, bestN = r, n
		}
	}
	c.rect(best, color.NRGBA{0xFF, 0xFF, 0xFF, 0xE6}) // translucent: grid lines show through
	border := color.RGBA{0xB0, 0xB0, 0xB0, 0xFF}
	c.rect(image.Rect(best.Min.X, best.Min.Y, best.Max.X, best.Min.Y+1), border)
	c.rect(image.Rect(best.Min.X, best.Max.Y-1, best.Max.X, best.Max.Y), border)
	c.rect(image.Rect(best.Min.X, best.Min.Y, best.Min.X+1, best.Max.Y), border)
	c.rect(image.Rect(best.Max.X-1, best.Min.Y, best.Max.X, best.Max.Y), border)
	cy := float64(best.Min.Y + h/2)
	x0 := float64(best.Min.X + legendPad)
	c.polyline([]pt{{x0, cy}, {x0 + legendSwatchWidth, cy}}, frontLineWidth)
	c.circle(x0+legendSwatchWidth/2, cy, pointRadius)
	c.fill(colFront)
	c.text(face, text, best.Min.X+2*legendPad+legendSwatchWidth, best.Min.Y+legendPad+m.Ascent.Ceil(), colText)
	return best
}

// placeLabel picks, among positions around the point, the label box that
// overlaps the obstacles least, leaving the plot area least; ties go to the
// earlier (more conventional) position.
func placeLabel(face font.Face, s string, p pt, area image.Rectangle, obstacles []image.Rectangle) image.Rectangle {
	m := face.Metrics()
	w := font.MeasureString(face, s).Ceil()
	h := (m.Ascent + m.Descent).Ceil()
	x, y := int(math.Round(p.x)), int(math.Round(p.y))
	o := labelOffset
	candidates := []image.Point{
		{x + o, y - h/2},           // right
		{x - o - w, y - h/2},       // left
		{x - w/2, y - o - h},       // above
		{x - w/2, y + o},           // below
		{x + o - 2, y - o - h + 2}, // above right
		{x + o - 2, y + o - 2},     // below right
		{x - o - w + 2, y - o - h + 2},
		{x - o - w + 2, y + o - 2},
	}
	best, bestCost := image.Rectangle{}, math.MaxInt
	for _, tl := range candidates {
		r := image.Rect(tl.X, tl.Y, tl.X+w, tl.Y+h)
		cost := 0
		for _, ob := range obstacles {
			cost += area2(r.Intersect(ob))
		}
		// Outside the plot area is allowed (labels may reach into the
		// margins) but costs more than overlapping, and beyond the image
		// it would be clipped, which costs most.
		cost += 2 * (area2(r) - area2(r.Intersect(area)))
		cost += 100 * (area2(r) - area2(r.Intersect(image.Rect(0, 0, plotW, plotH))))
		if cost < bestCost {
			best, bestCost = r, cost
		}
	}
	return best
}

func area2(r image.Rectangle) int { return r.Dx() * r.Dy() }

// axisTicks is an axis range and its tick positions.
type axisTicks struct {
	lo, hi, step float64
	ticks        []float64
}

// niceAxis pads [lo, hi] by 5 % each side, so points do not sit on the
// spines, and extends it to multiples of a 1-2-5 step giving about target
// ticks (Heckbert's "nice numbers").
func niceAxis(lo, hi float64, target int) axisTicks {
	if hi == lo {
		d := math.Max(math.Abs(lo)*0.1, 1)
		lo, hi = lo-d, hi+d
	}
	pad := 0.05 * (hi - lo)
	lo, hi = lo-pad, hi+pad
	step := niceNum((hi-lo)/float64(target-1), true)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for k := 0; ; k++ {
		v := lo + float64(k)*step
		if v > hi+step*1e-9 {
			break
		}
		ticks = append(ticks, v)
	}
	return axisTicks{lo: lo, hi: hi, step: step, ticks: ticks}
}

func niceNum(x float64, round bool) float64 {
	exp := math.Floor(math.Log10(x))
	f := x / math.Pow(10, exp)
	var nf float64
	switch {
	case round && f < 1.5:
		nf = 1
	case round && f < 3:
		nf = 2
	case round && f < 7:
		nf = 5
	case round:
		nf = 10
	case f <= 1:
		nf = 1
	case f <= 2:
		nf = 2
	case f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, exp)
}

// formatTick prints v with just enough decimals for the step size.
func formatTick(v, step float64) string {
	dec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	if math.Abs(v) < step*1e-9 {
		v = 0 // avoid "-0.0"
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}
