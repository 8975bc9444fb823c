package classify

import (
	"math"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
)

// PoolGrid pools each block's tokens over a grid×grid partition of the token grid (grid 1 is the plain
// mean, Features.Pooled): every region's mean is L2-normalised, the regions and blocks concatenated and
// normalised again. A global mean keeps which patterns occur but not where; on Fashion-MNIST the layout
// (sleeves, a bag's handle, a shoe's toe) is much of the class.
func PoolGrid(f *featurecache.Features, blocks []int, grid int) ([]float32, error) {
	side := int(math.Round(math.Sqrt(float64(f.Tokens))))
	if grid < 1 || side*side != f.Tokens || side%grid != 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cannot pool %d tokens over a %d×%d grid", f.Tokens, grid, grid)
	}
	cell := side / grid
	out := make([]float32, 0, len(blocks)*grid*grid*f.Width)
	for _, b := range blocks {
		x := f.Block(b)
		if x == nil {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "feature cache holds blocks %v, not %d", f.Blocks, b)
		}
		for gy := range grid {
			for gx := range grid {
				mean := make([]float64, f.Width)
				for y := gy * cell; y < (gy+1)*cell; y++ {
					for xx := gx * cell; xx < (gx+1)*cell; xx++ {
						row := x[(y*side+xx)*f.Width : (y*side+xx+1)*f.Width]
						for d, v := range row {
							mean[d] += float64(v)
						}
					}
				}
				out = append(out, Normalize(mean)...)
			}
		}
	}
	v := make([]float64, len(out))
	for i, x := range out {
		v[i] = float64(x)
	}
	return Normalize(v), nil
}
