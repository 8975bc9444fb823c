package classifyeval

import (
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/scene"
)

func TestPerturbations(t *testing.T) {
	var it item
	for i := range it {
		it[i] = uint8(i % 251)
	}
	const n = scene.ItemSide
	t.Run("identity warp", func(t *testing.T) {
		if got := warp(&it, 1, 0, 0, 0); got != it {
			t.Error("scale 1, no rotation, no shift changed the item")
		}
	})
	t.Run("shift moves pixels and fills with background", func(t *testing.T) {
		got := warp(&it, 1, 0, 2, -1)
		for y := range n {
			for x := range n {
				want := uint8(0)
				if sx, sy := x-2, y+1; sx >= 0 && sy < n {
					want = it[sy*n+sx]
				}
				if got[y*n+x] != want {
					t.Fatalf("pixel (%d, %d) = %d; want %d", x, y, got[y*n+x], want)
				}
			}
		}
	})
	t.Run("offsets lie on their ring", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for k := 1; k <= 3; k++ {
			for range 100 {
				dx, dy := offsetOnRing(rng, k)
				if max(abs(dx), abs(dy)) != k {
					t.Fatalf("offset (%d, %d) is not on ring %d", dx, dy, k)
				}
			}
		}
	})
	t.Run("photometric", func(t *testing.T) {
		var flat item
		for i := range flat {
			flat[i] = 100
		}
		if blur(&flat) != flat {
			t.Error("blurring a flat item changed it")
		}
		if c := contrast(&flat, 1.2); c[0] != 120 {
			t.Errorf("contrast ×1.2 of 100 = %d", c[0])
		}
		noisy := noise(rand.New(rand.NewPCG(3, 4)), &flat, 0.03)
		var sum, sq float64
		for _, v := range noisy {
			d := float64(v) - 100
			sum, sq = sum+d, sq+d*d
		}
		if mean, sd := sum/float64(len(noisy)), sq/float64(len(noisy)); abs(int(mean)) > 1 || sd < 5*5 || sd > 11*11 {
			t.Errorf("noise mean %.2f, variance %.1f; want about 0 and 7.65²", mean, sd)
		}
	})
	t.Run("every perturbation keeps the item's size and is seeded", func(t *testing.T) {
		for k, p := range Perturbations() {
			a := p.Apply(rand.New(rand.NewPCG(1, uint64(k))), &it)
			b := p.Apply(rand.New(rand.NewPCG(1, uint64(k))), &it)
			if a != b {
				t.Errorf("%s: two runs from one seed differ", p.Name)
			}
		}
	})
}
