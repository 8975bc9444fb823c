package safetensors

// DType is a safetensors element type, spelled exactly as it appears in the
// header's "dtype" field.
type DType string

// The element types Cachet reads and writes. Others defined by newer
// safetensors versions (F8 variants, U16..U64) are rejected on purpose: we
// would rather fail than hand a caller bytes it cannot interpret.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the width of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	default:
		return 0
	}
}

// Valid reports whether d is one of the dtypes this package supports.
func (d DType) Valid() bool { return d.Size() > 0 }
