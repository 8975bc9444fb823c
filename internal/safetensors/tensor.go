package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/x448/float16"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is) and its message names the tensor at fault.
var (
	ErrTruncated       = errors.New("truncated file")
	ErrHeaderTooLarge  = errors.New("header too large")
	ErrInvalidHeader   = errors.New("invalid header")
	ErrDuplicateKey    = errors.New("duplicate key")
	ErrInvalidName     = errors.New("invalid tensor name")
	ErrInvalidMetadata = errors.New("invalid metadata")
	ErrUnknownDType    = errors.New("unknown dtype")
	ErrInvalidShape    = errors.New("invalid shape")
	ErrInvalidOffsets  = errors.New("invalid data offsets")
	ErrSizeMismatch    = errors.New("byte length does not match shape and dtype")
	ErrOverlap         = errors.New("overlapping tensors")
	ErrGap             = errors.New("data section not fully covered")
	ErrUnsupported     = errors.New("unsupported conversion")
)

// Tensor is one named entry of a safetensors file: raw little-endian,
// row-major element bytes plus the dtype and shape needed to interpret them.
// A nil or empty Shape is a scalar (one element).
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// File is a whole safetensors file. Metadata is the optional free-form
// "__metadata__" string map.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// Names returns the tensor names in sorted order, which is also the order
// Encode lays tensors out in the data section.
func (f File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// FromFloat32 builds an F32 tensor. The shape is not checked against
// len(vals) here so the helper stays infallible; Encode and Validate reject
// a mismatch.
func FromFloat32(shape []int64, vals []float32) Tensor {
	data := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{DType: F32, Shape: cloneShape(shape), Data: data}
}

// FromFloat16 builds an F16 tensor, converting each value to IEEE 754 half
// precision with round-to-nearest-even (overflow becomes ±Inf, NaN stays
// NaN). As with FromFloat32, the shape is checked later by Validate.
func FromFloat16(shape []int64, vals []float32) Tensor {
	data := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(data[2*i:], float16.Fromfloat32(v).Bits())
	}
	return Tensor{DType: F16, Shape: cloneShape(shape), Data: data}
}

// Numel returns the number of elements described by Shape (1 for a scalar),
// or -1 if the shape has a negative dimension or its product overflows int64.
func (t Tensor) Numel() int64 {
	n, err := numel(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// Validate checks that the dtype is known, the shape is well formed and
// len(Data) equals Numel() × DType.Size().
func (t Tensor) Validate() error {
	if err := validateTensor(t); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Float32s decodes a floating-point tensor (F32, F16, BF16 or F64) to
// float32. F64 values are rounded to nearest; those beyond float32 range
// become ±Inf.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := len(t.Data) / t.DType.Size()
	out := make([]float32, n)
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(t.Data[2*i:])).Float32()
		}
	case BF16:
		// bfloat16 is the top half of a float32, so widening is exact.
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
	default:
		return nil, fmt.Errorf("safetensors: %w: %s to float32", ErrUnsupported, t.DType)
	}
	return out, nil
}

// validateTensor is Validate without the package prefix, so callers can
// wrap it with the tensor name.
func validateTensor(t Tensor) error {
	want, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return err
	}
	if int64(len(t.Data)) != want {
		return fmt.Errorf("%w: have %d bytes, want %d (%s %v)", ErrSizeMismatch, len(t.Data), want, t.DType, t.Shape)
	}
	return nil
}

// numel multiplies the dimensions with overflow checks. Overflow is an error
// even when a later dimension is 0, matching the reference implementation's
// checked fold, so both sides agree on which headers are valid.
func numel(shape []int64) (int64, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: dimension %d is negative (%d)", ErrInvalidShape, i, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("%w: element count overflows at dimension %d", ErrInvalidShape, i)
		}
		n *= d
	}
	return n, nil
}

// byteLen is numel × dtype size, checked for overflow.
func byteLen(d DType, shape []int64) (int64, error) {
	size := int64(d.Size())
	if size == 0 {
		return 0, fmt.Errorf("%w: %q", ErrUnknownDType, string(d))
	}
	n, err := numel(shape)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/size {
		return 0, fmt.Errorf("%w: byte length overflows", ErrInvalidShape)
	}
	return n * size, nil
}

func cloneShape(shape []int64) []int64 {
	return append([]int64{}, shape...)
}
