package eval

import (
	"image"
	"math"
	"reflect"
	"testing"
)

func TestParetoFront(t *testing.T) {
	tests := []struct {
		name   string
		points []Point
		want   []int
	}{
		{"single", []Point{{"a", 1, 1}}, []int{0}},
		{"one dominates", []Point{{"a", 1, 1}, {"b", 2, 2}}, []int{1}},
		{"trade-off sorted by x", []Point{{"a", 3, 1}, {"b", 1, 3}, {"c", 2, 2}, {"d", 1.5, 1.5}}, []int{1, 2, 0}},
		{"equal x: only the higher y", []Point{{"a", 2, 1}, {"b", 2, 3}}, []int{1}},
		{"duplicates both kept", []Point{{"a", 2, 2}, {"b", 2, 2}, {"c", 1, 1}}, []int{0, 1}},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParetoFront(tc.points); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("sample benchmark", func(t *testing.T) {
		var labels []string
		for _, i := range ParetoFront(samplePoints) {
			labels = append(labels, samplePoints[i].Label)
		}
		want := []string{"teacache δ=0.1", "taylorseer N=3 O=3", "foca N=4", "taylorseer N=4 O=2", "teacache δ=0.3"}
		if !reflect.DeepEqual(labels, want) {
			t.Fatalf("got %q, want %q", labels, want)
		}
	})
}

func TestNiceAxis(t *testing.T) {
	tests := []struct {
		name           string
		lo, hi         float64
		target         int
		wantLo, wantHi float64
		wantStep       float64
	}{
		{"speed-ups", 1.45, 3.9, 8, 1, 4.5, 0.5},
		{"psnr", 19.5, 35.5, 6, 15, 40, 5},
		{"single value", 2, 2, 6, 0.5, 3.5, 0.5},
		{"tiny values", 0.0012, 0.0031, 6, 0.001, 0.0035, 0.0005},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := niceAxis(tc.lo, tc.hi, tc.target)
			const tol = 1e-12
			if math.Abs(a.lo-tc.wantLo) > tol || math.Abs(a.hi-tc.wantHi) > tol || math.Abs(a.step-tc.wantStep) > tol {
				t.Fatalf("got [%v, %v] step %v", a.lo, a.hi, a.step)
			}
			if n := len(a.ticks); math.Abs(a.ticks[0]-a.lo) > tol || math.Abs(a.ticks[n-1]-a.hi) > tol {
				t.Fatalf("ticks %v do not span the axis", a.ticks)
			}
		})
	}
}

func TestFormatTick(t *testing.T) {
	tests := []struct {
		v, step float64
		want    string
	}{{1.5, 0.5, "1.5"}, {2, 0.5, "2.0"}, {20, 5, "20"}, {0.0015, 0.0005, "0.0015"}, {-1e-17, 0.1, "0.0"}, {100, 10, "100"}}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := formatTick(tc.v, tc.step); got != tc.want {
				t.Fatalf("formatTick(%v, %v) = %q", tc.v, tc.step, got)
			}
		})
	}
}

func TestParetoPlot(t *testing.T) {
	t.Run("draws the frontier", func(t *testing.T) {
		img, err := ParetoPlot(samplePoints, "x", "y", "t")
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds() != image.Rect(0, 0, 900, 600) {
			t.Fatalf("bounds %v", img.Bounds())
		}
		rgba := img.(*image.RGBA)
		front, dominated := 0, 0
		for i := 0; i < len(rgba.Pix); i += 4 {
			c := [3]uint8{rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2]}
			switch c {
			case [3]uint8{colFront.R, colFront.G, colFront.B}:
				front++
			case [3]uint8{colDominated.R, colDominated.G, colDominated.B}:
				dominated++
			}
		}
		// 5 frontier markers + line + legend swatch, 9 other markers of
		// about π·5² ≈ 78 px each (fully covered pixels only).
		if front < 5*50+300 || dominated < 9*50 {
			t.Fatalf("frontier pixels %d, dominated pixels %d", front, dominated)
		}
	})
	t.Run("one point and empty labels", func(t *testing.T) {
		if _, err := ParetoPlot([]Point{{"", 1, 1}}, "", "", ""); err != nil {
			t.Fatal(err)
		}
	})
	for name, pts := range map[string][]Point{
		"no points": nil,
		"infinite":  {{"uncached", 1, math.Inf(1)}},
		"NaN":       {{"a", math.NaN(), 1}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParetoPlot(pts, "x", "y", "t"); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
