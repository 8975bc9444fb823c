package classify

import "math/rand/v2"

// gaussian is a d-vector of standard normal draws: a random direction once normalised.
func gaussian(rng *rand.Rand, d int) []float64 {
	v := make([]float64, d)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}
