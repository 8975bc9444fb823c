package model

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// MetaStorage records how a weights file stores its values ("f16" when halved); loading widens them back.
const MetaStorage = "cachet.storage"

// HalveWeightsFile rewrites the fp32 weights file in as fp16 at out (half the bytes; loading widens the
// values back to fp32). A value outside fp16's range is an error rather than an infinity. It returns the
// largest relative rounding error over all values, for the model card.
func HalveWeightsFile(in, out string) (maxRelErr float64, err error) {
	f, _, err := ReadWeightsFile(in)
	if err != nil {
		return 0, err
	}
	halved := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	for k, v := range f.Metadata {
		halved.Metadata[k] = v
	}
	halved.Metadata[MetaStorage] = "f16"
	for _, name := range f.Names() {
		t := f.Tensors[name]
		if t.DType != safetensors.F32 {
			halved.Tensors[name] = t
			continue
		}
		vals, err := t.Float32s()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		for i, v := range vals {
			if math.Abs(float64(v)) > 65504 {
				return 0, cachet.Errorf(cachet.CodeInvalidArgument, "%s[%d] = %g is outside fp16's range; keep this file in fp32", name, i, v)
			}
		}
		h := safetensors.FromFloat16(t.Shape, vals)
		back, err := h.Float32s()
		if err != nil {
			return 0, err
		}
		for i, v := range vals {
			if v != 0 && math.Abs(float64(v)) > 6.1e-5 { // relative error is meaningful above fp16's subnormals
				maxRelErr = max(maxRelErr, math.Abs(float64(back[i]-v))/math.Abs(float64(v)))
			}
		}
		halved.Tensors[name] = h
	}
	return maxRelErr, writeSafetensors(out, halved)
}
