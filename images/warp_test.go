package images_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/images"
)

func TestTurn(t *testing.T) {
	const side = 8
	img := make([]float32, side*side)
	for i := range img {
		img[i] = -1
	}
	img[1*side+6] = 1 // a point right of centre, near the top
	cases := []struct {
		name    string
		degrees float64
		want    int // where the point lands
	}{
		{"no turn", 0, 1*side + 6},
		{"a quarter turn", 90, 6*side + 6},
		{"half a turn", 180, 6*side + 1},
		{"a quarter turn back", -90, 1*side + 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := images.Turn(img, side, c.degrees*math.Pi/180, -1)
			for i, v := range out {
				want := float32(-1)
				if i == c.want {
					want = 1
				}
				if math.Abs(float64(v-want)) > 1e-5 {
					t.Fatalf("pixel (%d, %d) = %v, want %v", i%side, i/side, v, want)
				}
			}
		})
	}
}
