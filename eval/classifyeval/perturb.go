package classifyeval

import (
	"math"
	"math/rand/v2"

	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/scene"
)

// item is one 28×28 Fashion-MNIST item.
type item = [scene.ItemPixels]uint8

// Perturbation is a change a real upload carries and a clean test item does not; Apply draws its amount
// from rng.
type Perturbation struct {
	Name  string
	Apply func(rng *rand.Rand, it *item) item
}

// Perturbations are the robustness section's shifts: geometric (shift, scale, rotation, each about the
// item's centre, empty where the item had no pixels), photometric (contrast, noise, blur), and the
// combination the issue measured through the API (shift ±2 px, contrast ×0.8–1.2, noise σ = 0.03).
func Perturbations() []Perturbation {
	shift := func(k int) func(*rand.Rand, *item) item {
		return func(rng *rand.Rand, it *item) item {
			dx, dy := offsetOnRing(rng, k)
			return warp(it, 1, 0, float64(dx), float64(dy))
		}
	}
	return []Perturbation{
		{"shift ±1 px", shift(1)},
		{"shift ±2 px", shift(2)},
		{"shift ±3 px", shift(3)},
		{"scale ±10 %", func(rng *rand.Rand, it *item) item { return warp(it, 1+0.1*sign(rng), 0, 0, 0) }},
		{"rotation ±10°", func(rng *rand.Rand, it *item) item { return warp(it, 1, 10*sign(rng)*math.Pi/180, 0, 0) }},
		{"contrast ×0.8–1.2", func(rng *rand.Rand, it *item) item { return contrast(it, 0.8+0.4*rng.Float64()) }},
		{"noise σ = 0.03", func(rng *rand.Rand, it *item) item { return noise(rng, it, 0.03) }},
		{"blur (3×3 binomial)", func(_ *rand.Rand, it *item) item { return blur(it) }},
		{"shift ±2 px, contrast, noise (the API measurement)", func(rng *rand.Rand, it *item) item {
			dx, dy := rng.IntN(5)-2, rng.IntN(5)-2
			s := warp(it, 1, 0, float64(dx), float64(dy))
			s = contrast(&s, 0.8+0.4*rng.Float64())
			return noise(rng, &s, 0.03)
		}},
	}
}

// offsetOnRing is a random offset whose larger coordinate is exactly k.
func offsetOnRing(rng *rand.Rand, k int) (int, int) {
	other := rng.IntN(2*k+1) - k
	a := k
	if rng.IntN(2) == 0 {
		a = -k
	}
	if rng.IntN(2) == 0 {
		return a, other
	}
	return other, a
}

func sign(rng *rand.Rand) float64 {
	if rng.IntN(2) == 0 {
		return -1
	}
	return 1
}

// warp is images.Warp on the evaluation's items.
func warp(it *item, s, angle, dx, dy float64) item { return images.Warp(it, s, angle, dx, dy) }

func clamp(v float64) uint8 { return uint8(math.Round(min(255, max(0, v)))) }

// contrast scales every pixel by f (the background stays black, as in a photo under other exposure).
func contrast(it *item, f float64) item {
	var out item
	for i, v := range it {
		out[i] = clamp(float64(v) * f)
	}
	return out
}

// noise adds Gaussian noise of standard deviation sigma (in units of full scale) to every pixel.
func noise(rng *rand.Rand, it *item, sigma float64) item {
	var out item
	for i, v := range it {
		out[i] = clamp(float64(v) + 255*sigma*rng.NormFloat64())
	}
	return out
}

// blur is the 3×3 binomial filter ([1 2 1]ᵀ[1 2 1]/16), edges extended.
func blur(it *item) item {
	const n = scene.ItemSide
	at := func(x, y int) float64 { return float64(it[min(n-1, max(0, y))*n+min(n-1, max(0, x))]) }
	var out item
	for y := range n {
		for x := range n {
			var sum float64
			for j := -1; j <= 1; j++ {
				for i := -1; i <= 1; i++ {
					sum += float64((2-abs(i))*(2-abs(j))) * at(x+i, y+j)
				}
			}
			out[y*n+x] = clamp(sum / 16)
		}
	}
	return out
}

func abs(v int) int { return max(v, -v) }
