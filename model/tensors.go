package model

import (
	"fmt"
	"unsafe"

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
	src, err := cTo(t, gotch.CPU)
	if err != nil {
		return nil, err
	}
	defer src.Drop()
	f, err := cTotype(src, gotch.Float)
	if err != nil {
		return nil, err
	}
	defer f.Drop()
	c, err := cContiguous(f)
	if err != nil {
		return nil, err
	}
	defer c.Drop()
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	// A plain copy from the tensor's storage: gotch's CopyData checks its destination element by element
	// through reflection, which dominates a GPU training step.
	ptr, err := c.DataPtr()
	if err != nil {
		return nil, fmt.Errorf("model: copying tensor data: %w", err)
	}
	copy(out, unsafe.Slice((*float32)(ptr), n))
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
	// From the bytes: gotch's NewTensorFromData walks the slice element by element through reflection
	// (three times), which costs more than a GPU training step's arithmetic.
	var raw []byte
	if len(data) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))
	}
	return fromBytes(raw, shape, gotch.Float, device)
}

// fromBytes makes a tensor of dtype and shape on device from its raw little-endian values (copied).
func fromBytes(raw []byte, shape []int64, dtype gotch.DType, device gotch.Device) (*ts.Tensor, error) {
	cpu, err := ts.OfDataSize(raw, shape, dtype)
	if err != nil {
		return nil, err
	}
	if device == gotch.CPU {
		return cpu, nil
	}
	defer cpu.Drop()
	return cTo(cpu, device)
}
