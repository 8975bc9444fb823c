package scene

import (
	"fmt"
	"math"
)

// The model sees a canvas byte v as v/127.5 − 1 (−1…1). Training, reference extraction and
// classification share this one mapping; FromModelUnits inverts it for generated images.

// ModelUnits maps canvas bytes to the model's −1…1.
func ModelUnits(canvas []uint8) []float32 {
	out := make([]float32, len(canvas))
	PutModelUnits(out, canvas)
	return out
}

// PutModelUnits writes canvas bytes into dst (len(dst) ≥ len(canvas)) in the model's −1…1.
func PutModelUnits(dst []float32, canvas []uint8) {
	for i, v := range canvas {
		dst[i] = float32(v)/127.5 - 1
	}
}

// CanvasesFromModelUnits maps a batch of generated 32×32 images in model units ([N, 1, 32, 32], as the
// sampler returns them) to canvas bytes, each as FromModelUnits does.
func CanvasesFromModelUnits(px []float32) ([][CanvasPixels]uint8, error) {
	if len(px)%CanvasPixels != 0 {
		return nil, fmt.Errorf("dataset: a batch of %d values is not whole 32×32×1 images", len(px))
	}
	out := make([][CanvasPixels]uint8, len(px)/CanvasPixels)
	for i := range out {
		var err error
		if out[i], err = FromModelUnits(px[i*CanvasPixels : (i+1)*CanvasPixels]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FromModelUnits maps one generated 32×32 image in model units back to canvas bytes:
// clamp((x+1)·127.5) to 0…255, rounded (NaN becomes 0).
func FromModelUnits(px []float32) ([CanvasPixels]uint8, error) {
	var out [CanvasPixels]uint8
	if len(px) != CanvasPixels {
		return out, fmt.Errorf("dataset: an image has %d values, want %d (32×32×1)", len(px), CanvasPixels)
	}
	for i, v := range px {
		f := (float64(v) + 1) * 127.5
		switch {
		case !(f > 0): // also NaN
			out[i] = 0
		case f >= 255:
			out[i] = 255
		default:
			out[i] = uint8(math.Round(f))
		}
	}
	return out, nil
}
