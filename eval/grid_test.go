package eval

import (
	"image"
	"image/color"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/image/font/basicfont"
)

func TestWrapText(t *testing.T) {
	face := basicfont.Face7x13 // 7 px per character
	tests := []struct {
		name  string
		s     string
		width int
		want  []string
	}{
		{"fits on one line", "a large bag", 126, []string{"a large bag"}},
		{"prompt over 17 columns", "a small mirrored sneaker on the left, inverted", 17 * 7,
			[]string{"a small mirrored", "sneaker on the", "left, inverted"}},
		{"long word is split", "abcdefghij xy", 4 * 7, []string{"abcd", "efgh", "ij", "xy"}},
		{"narrower than a glyph", "ab", 3, []string{"a", "b"}},
		{"extra spaces collapse", "  a   b  ", 70, []string{"a b"}},
		{"empty", "", 70, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := wrapText(face, tc.s, tc.width); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGridLayout(t *testing.T) {
	black, white := constImage(4, 0), constImage(4, 1)
	half := []float32{0.5, 0.5, 0.5, 0.5}
	gray := func(v uint8) color.RGBA { return color.RGBA{v, v, v, 0xFF} }
	tests := []struct {
		name   string
		images [][]float32
		cols   int
		labels []string
		scale  int
		size   image.Point
		pixels map[image.Point]color.RGBA
	}{
		{
			// 2 + 2·(6+2) wide; 2 + 2·(6+2) high; no labels.
			name: "2x2 unlabelled at scale 3", images: [][]float32{black, white, half}, cols: 2, scale: 3,
			size: image.Pt(18, 18),
			pixels: map[image.Point]color.RGBA{
				{0, 0}: gridBackground, {2, 2}: gray(0), {7, 7}: gray(0), {8, 2}: gridBackground,
				{10, 2}: gray(255), {15, 7}: gray(255), {2, 10}: gray(128), {10, 10}: gridBackground,
			},
		},
		{
			// One label line: 13 px + 4 px padding under the 4 px tile.
			name: "labelled row", images: [][]float32{black, white}, cols: 0, labels: []string{"x"}, scale: 2,
			size:   image.Pt(2+2*(4+2), 2+4+17+2),
			pixels: map[image.Point]color.RGBA{{2, 2}: gray(0), {8, 5}: gray(255), {2, 7}: gridBackground},
		},
		{
			name: "bad tile is magenta, scale 0 means 1", images: [][]float32{{0.2}}, cols: 5, scale: 0,
			size: image.Pt(6, 6), pixels: map[image.Point]color.RGBA{{2, 2}: gridBadTile, {3, 3}: gridBadTile},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := Grid(tc.images, 2, 2, tc.cols, tc.labels, tc.scale)
			if g == nil || g.Bounds().Size() != tc.size {
				t.Fatalf("size %v, want %v", g.Bounds(), tc.size)
			}
			for p, want := range tc.pixels {
				if got := g.RGBAAt(p.X, p.Y); got != want {
					t.Errorf("pixel %v: %v, want %v", p, got, want)
				}
			}
		})
	}
	t.Run("nothing to draw", func(t *testing.T) {
		if Grid(nil, 2, 2, 1, nil, 1) != nil || Grid([][]float32{black}, 0, 2, 1, nil, 1) != nil {
			t.Fatal("want nil")
		}
	})
	t.Run("labels all get the longest label's height", func(t *testing.T) {
		g := Grid([][]float32{black, black}, 2, 2, 2, []string{"a", "aaaa bbbb cccc dddd"}, 20)
		// Tile 40 px wide, 34 px of text (4 glyphs) after padding: 4 lines.
		if want := 2 + 40 + 4*13 + 4 + 2; g.Bounds().Dy() != want {
			t.Fatalf("height %d, want %d", g.Bounds().Dy(), want)
		}
	})
}

func TestToByte(t *testing.T) {
	tests := []struct {
		in   float32
		want uint8
	}{{-1, 0}, {0, 0}, {0.5, 128}, {1, 255}, {2, 255}, {float32(nan()), 0}}
	for _, tc := range tests {
		t.Run("", func(t *testing.T) {
			if got := toByte(tc.in); got != tc.want {
				t.Fatalf("toByte(%v) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestWritePNGNil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.png")
	var nilRGBA *image.RGBA
	for name, img := range map[string]image.Image{"nil interface": nil, "nil RGBA": nilRGBA} {
		t.Run(name, func(t *testing.T) {
			if err := WritePNG(path, img); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
