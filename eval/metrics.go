package eval

import (
	"errors"
	"fmt"
	"math"
)

// MaxPSNR caps per-image PSNR in MeanPSNR. Identical images have infinite
// PSNR; one such pair (e.g. a cache policy that never skipped a step) would
// otherwise make the dataset mean +Inf, which neither sorts usefully nor
// encodes as JSON. 100 dB on a [0,1] scale means an RMS error of 1e-5,
// far below anything 8-bit output could show.
const MaxPSNR = 100.0

// PSNR returns the peak signal-to-noise ratio of b against a in decibels:
// 10·log10(peak² / MSE). peak is the largest possible pixel value (1 for
// images in [0,1], 255 for 8-bit). Identical images give +Inf; mismatched or
// empty inputs and a non-positive peak give NaN, since the signature has no
// error and NaN cannot be mistaken for a real score.
func PSNR(a, b []float32, peak float64) float64 {
	if len(a) != len(b) || len(a) == 0 || !(peak > 0) {
		return math.NaN()
	}
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	mse := sum / float64(len(a))
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(peak*peak/mse)
}

// MeanPSNR is the dataset-level PSNR: the mean over image pairs of PSNR,
// each capped at MaxPSNR (see there). Averaging per-image dB values, rather
// than pooling the MSE, is what image-restoration and caching papers report.
func MeanPSNR(a, b [][]float32, peak float64) (float64, error) {
	if err := checkPairs(a, b); err != nil {
		return 0, err
	}
	var sum float64
	for i := range a {
		p := PSNR(a[i], b[i], peak)
		if math.IsNaN(p) {
			return 0, fmt.Errorf("psnr of pair %d: %d vs %d values, peak %g", i, len(a[i]), len(b[i]), peak)
		}
		sum += math.Min(p, MaxPSNR)
	}
	return sum / float64(len(a)), nil
}

// MeanSSIM is the mean of SSIM over image pairs, all width×height.
func MeanSSIM(a, b [][]float32, width, height int, peak float64) (float64, error) {
	if err := checkPairs(a, b); err != nil {
		return 0, err
	}
	var sum float64
	for i := range a {
		s := SSIM(a[i], b[i], width, height, peak)
		if math.IsNaN(s) {
			return 0, fmt.Errorf("ssim of pair %d: %d and %d values for %dx%d, peak %g",
				i, len(a[i]), len(b[i]), width, height, peak)
		}
		sum += s
	}
	return sum / float64(len(a)), nil
}

func checkPairs(a, b [][]float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("image sets differ in size: %d vs %d", len(a), len(b))
	}
	if len(a) == 0 {
		return errors.New("no images")
	}
	return nil
}

// Accuracy is the fraction of positions where pred equals truth. Mismatched
// lengths or empty input give NaN rather than a plausible-looking 0.
func Accuracy(pred, truth []int) float64 {
	if len(pred) != len(truth) || len(pred) == 0 {
		return math.NaN()
	}
	correct := 0
	for i := range pred {
		if pred[i] == truth[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(pred))
}
