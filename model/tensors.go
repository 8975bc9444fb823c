package model

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Float32s copies t's values to Go (converting to float32 on the CPU when needed).
func Float32s(t *ts.Tensor) ([]float32, error) {
	shape, err := t.Size()
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	src, err := t.To(gotch.CPU, false)
	if err != nil {
		return nil, err
	}
	defer src.Drop()
	f, err := src.Totype(gotch.Float, false)
	if err != nil {
		return nil, err
	}
	defer f.Drop()
	c, err := f.Contiguous(false)
	if err != nil {
		return nil, err
	}
	defer c.Drop()
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	if err := c.CopyData(out, uint(n)); err != nil {
		return nil, fmt.Errorf("model: copying tensor data: %w", err)
	}
	return out, nil
}

// FromFloat32s makes a float32 tensor of the given shape on device from data (copied).
func FromFloat32s(data []float32, shape []int64, device gotch.Device) (*ts.Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("model: %d values do not fill shape %v", len(data), shape)
	}
	cpu, err := ts.NewTensorFromData(data, shape)
	if err != nil {
		return nil, err
	}
	if device == gotch.CPU {
		return cpu, nil
	}
	defer cpu.Drop()
	return cpu.To(device, false)
}
