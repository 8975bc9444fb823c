package eval

import "math"

// SSIM parameters of Wang et al. 2004, as used by skimage with
// gaussian_weights=True: the window radius follows scipy's gaussian_filter
// with truncate=3.5, i.e. int(3.5·1.5 + 0.5) = 5, an 11×11 window.
const (
	ssimSigma  = 1.5
	ssimRadius = 5
	ssimK1     = 0.01
	ssimK2     = 0.03
)

// ssimKernel is the normalised 1-D Gaussian; the 2-D window is its outer
// product, so filtering can be done separably.
var ssimKernel = func() [2*ssimRadius + 1]float64 {
	var k [2*ssimRadius + 1]float64
	var sum float64
	for i := range k {
		x := float64(i - ssimRadius)
		k[i] = math.Exp(-x * x / (2 * ssimSigma * ssimSigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}()

// SSIM returns the mean structural similarity of two width×height grayscale
// images (row-major), following Wang et al. 2004: 11×11 Gaussian window with
// σ = 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances, and the
// mean of the SSIM map over positions where the window fits entirely inside
// the image (no padding). This matches skimage's structural_similarity(a, b,
// gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
// data_range=peak). For 32×32 images the map is 22×22.
//
// Identical images give 1. Inputs that are not width×height, images smaller
// than the window, or a non-positive peak give NaN (there is no error
// return; NaN cannot pass for a score).
func SSIM(a, b []float32, width, height int, peak float64) float64 {
	const win = 2*ssimRadius + 1
	if width < win || height < win || len(a) != width*height || len(b) != width*height || !(peak > 0) {
		return math.NaN()
	}
	c1 := (ssimK1 * peak) * (ssimK1 * peak)
	c2 := (ssimK2 * peak) * (ssimK2 * peak)
	outW, outH := width-2*ssimRadius, height-2*ssimRadius

	// Horizontal pass: for every row, the windowed sums of x, y, x², y², xy
	// at each valid column. Five maps of height×outW.
	n := height * outW
	hx, hy := make([]float64, n), make([]float64, n)
	hxx, hyy, hxy := make([]float64, n), make([]float64, n), make([]float64, n)
	for r := 0; r < height; r++ {
		row := r * width
		for c := 0; c < outW; c++ {
			var sx, sy, sxx, syy, sxy float64
			for k, w := range ssimKernel {
				x := float64(a[row+c+k])
				y := float64(b[row+c+k])
				sx += w * x
				sy += w * y
				sxx += w * x * x
				syy += w * y * y
				sxy += w * x * y
			}
			i := r*outW + c
			hx[i], hy[i], hxx[i], hyy[i], hxy[i] = sx, sy, sxx, syy, sxy
		}
	}

	// Vertical pass and the SSIM map, accumulated straight into the mean.
	var total float64
	for r := 0; r < outH; r++ {
		for c := 0; c < outW; c++ {
			var mx, my, mxx, myy, mxy float64
			for k, w := range ssimKernel {
				i := (r+k)*outW + c
				mx += w * hx[i]
				my += w * hy[i]
				mxx += w * hxx[i]
				myy += w * hyy[i]
				mxy += w * hxy[i]
			}
			vx := mxx - mx*mx
			vy := myy - my*my
			cov := mxy - mx*my
			num := (2*mx*my + c1) * (2*cov + c2)
			den := (mx*mx + my*my + c1) * (vx + vy + c2)
			total += num / den
		}
	}
	return total / float64(outW*outH)
}
