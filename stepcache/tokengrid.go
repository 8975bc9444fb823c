package stepcache

import (
	"fmt"
	"math"
	"sort"
)

// tokenGrid is the square grid of tokens that tiles a side×side image: tokens per side, and pixels per
// token side.
func tokenGrid(tokens, side int) (grid, patch int, err error) {
	grid = int(math.Round(math.Sqrt(float64(tokens))))
	if grid*grid != tokens || side%grid != 0 {
		return 0, 0, fmt.Errorf("stepcache: %d tokens do not tile a %d-pixel image", tokens, side)
	}
	return grid, side / grid, nil
}

// addPatchChange adds, for every image and token, |cur − prev| summed over the token's patch of two
// outputs [n, ch, side, side] to change[image·grid² + token].
func addPatchChange(change []float64, prev, cur []float32, n, ch, side, grid int) {
	patch, tokens := side/grid, grid*grid
	for img := range n {
		for c := range ch {
			for y := range side {
				for x := range side {
					i := ((img*ch+c)*side+y)*side + x
					change[img*tokens+(y/patch)*grid+x/patch] += math.Abs(float64(cur[i] - prev[i]))
				}
			}
		}
	}
}

// ranked is 0…n−1 ordered by score, highest first, ties in index order.
func ranked(n int, score func(i int) float64) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return score(order[a]) > score(order[b]) })
	return order
}
