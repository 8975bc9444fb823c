package scene

import (
	"math/rand/v2"

	"github.com/cachetlab/cachet"
)

// Geometry. See the package comment for the picture.
const (
	ItemSide     = 28 // a Fashion-MNIST item
	ItemPixels   = ItemSide * ItemSide
	CanvasSide   = 32 // a rendered scene
	CanvasPixels = CanvasSide * CanvasSide
	SmallSide    = 16 // a small item's box; a large item's box is ItemSide
	// LargeOffset is the large item's box corner (x and y): centred, a 2-pixel background frame.
	LargeOffset = (CanvasSide - ItemSide) / 2
	// SmallMargin is a small item's gap to the canvas edge it is pushed to (left, right, top, bottom):
	// 1 pixel keeps the outermost ring pure background (Analyze reads inversion there) while putting
	// the off-centre boxes as far from the centre box as the canvas allows (7 pixels).
	SmallMargin = 1
)

// Position is where a small item sits. Large items are always Center (the zero value).
type Position int

const (
	Center Position = iota
	Left
	Right
	Top
	Bottom
	numPositions
)

// NumPositions counts the positions.
const NumPositions = int(numPositions)

var positionNames = [numPositions]string{"center", "left", "right", "top", "bottom"}

func (p Position) String() string {
	if p < 0 || p >= numPositions {
		return "invalid"
	}
	return positionNames[p]
}

// Positions lists every Position in order.
func Positions() []Position { return []Position{Center, Left, Right, Top, Bottom} }

// Scene is what a prompt describes and what Render draws.
type Scene struct {
	Class    int      // index into ClassNames
	Large    bool     // ItemSide box, always centred; otherwise a SmallSide box at Position
	Position Position // must be Center when Large
	Mirrored bool     // the item is flipped left↔right
	Inverted bool     // dark item on a light background (every pixel p → 255−p)
}

// Validate says what is wrong with a scene, as CodeInvalidArgument.
func (s Scene) Validate() error {
	if s.Class < 0 || s.Class >= NumClasses {
		return cachet.Errorf(cachet.CodeInvalidArgument, "class %d is out of range 0..%d", s.Class, NumClasses-1)
	}
	if s.Position < 0 || s.Position >= numPositions {
		return cachet.Errorf(cachet.CodeInvalidArgument, "position %d is out of range 0..%d", int(s.Position), int(numPositions)-1)
	}
	if s.Large && s.Position != Center {
		return cachet.Errorf(cachet.CodeInvalidArgument,
			"a large item is always centred; position %s applies to small items only", s.Position)
	}
	return nil
}

// Box is the item's square on the canvas: top-left corner (X, Y) and side length.
func (s Scene) Box() (x, y, side int) {
	if s.Large {
		return LargeOffset, LargeOffset, ItemSide
	}
	const mid = (CanvasSide - SmallSide) / 2         // 8
	const far = CanvasSide - SmallSide - SmallMargin // 15
	switch s.Position {
	case Left:
		return SmallMargin, mid, SmallSide
	case Right:
		return far, mid, SmallSide
	case Top:
		return mid, SmallMargin, SmallSide
	case Bottom:
		return mid, far, SmallSide
	}
	return mid, mid, SmallSide
}

// Canonical is the reference render of a class: large, centred, upright, not inverted — the item exactly
// as Fashion-MNIST has it, inside a 2-pixel frame. Personalisation uses it for the subject's images.
func Canonical(class int) Scene { return Scene{Class: class, Large: true} }

// RandomScene draws a scene of the given class: large or small 50/50, a small item's position uniform
// over the five, mirrored 50 %, inverted 50 %. It makes four draws per scene whatever they come out as
// (size, position, mirrored, inverted), so a seeded rng yields the same scene sequence on every run.
// It does not check class; Render does.
func RandomScene(rng *rand.Rand, class int) Scene {
	large := rng.IntN(2) == 0
	pos := Position(rng.IntN(int(numPositions)))
	if large {
		pos = Center
	}
	return Scene{
		Class:    class,
		Large:    large,
		Position: pos,
		Mirrored: rng.IntN(2) == 0,
		Inverted: rng.IntN(2) == 0,
	}
}

// AllScenes lists every valid scene of a class — 6 placements (1 large, 5 small) × mirrored × inverted
// = 24 — in a fixed order.
func AllScenes(class int) []Scene {
	var out []Scene
	for _, large := range []bool{true, false} {
		for _, pos := range Positions() {
			if large && pos != Center {
				continue
			}
			for _, mir := range []bool{false, true} {
				for _, inv := range []bool{false, true} {
					out = append(out, Scene{Class: class, Large: large, Position: pos, Mirrored: mir, Inverted: inv})
				}
			}
		}
	}
	return out
}
