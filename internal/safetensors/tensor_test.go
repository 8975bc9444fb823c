package safetensors

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestDTypeSize(t *testing.T) {
	tests := []struct {
		d    DType
		want int
	}{
		{F64, 8}, {F32, 4}, {F16, 2}, {BF16, 2}, {I64, 8}, {I32, 4},
		{I16, 2}, {I8, 1}, {U8, 1}, {Bool, 1}, {"F8_E4M3", 0}, {"", 0}, {"f32", 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.d), func(t *testing.T) {
			if got := tt.d.Size(); got != tt.want {
				t.Errorf("Size() = %d, want %d", got, tt.want)
			}
			if got := tt.d.Valid(); got != (tt.want > 0) {
				t.Errorf("Valid() = %v", got)
			}
		})
	}
}

func TestNumel(t *testing.T) {
	tests := []struct {
		name  string
		shape []int64
		want  int64
	}{
		{"nil scalar", nil, 1},
		{"empty scalar", []int64{}, 1},
		{"vector", []int64{5}, 5},
		{"matrix", []int64{2, 3}, 6},
		{"zero dim", []int64{4, 0, 7}, 0},
		{"negative", []int64{2, -1}, -1},
		{"overflow", []int64{1 << 40, 1 << 40}, -1},
		{"overflow before zero", []int64{1 << 40, 1 << 40, 0}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Tensor{Shape: tt.shape}).Numel(); got != tt.want {
				t.Errorf("Numel() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestFromFloat16 pins the half-precision conversion bit for bit, since
// cached features depend on identical rounding across runs and platforms.
func TestFromFloat16(t *testing.T) {
	pow2 := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"+0", 0, 0x0000},
		{"-0", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3C00},
		{"minus two", -2, 0xC000},
		{"max finite", 65504, 0x7BFF},
		{"below overflow tie", 65519, 0x7BFF},
		{"overflow tie rounds to inf", 65520, 0x7C00},
		{"large overflows", 1e6, 0x7C00},
		{"large negative overflows", -1e6, 0xFC00},
		{"+inf", float32(math.Inf(1)), 0x7C00},
		{"-inf", float32(math.Inf(-1)), 0xFC00},
		{"smallest normal", pow2(-14), 0x0400},
		{"largest subnormal", 1023 * pow2(-24), 0x03FF},
		{"smallest subnormal", pow2(-24), 0x0001},
		{"negative smallest subnormal", -pow2(-24), 0x8001},
		{"half of smallest subnormal ties to zero", pow2(-25), 0x0000},
		{"above half of smallest subnormal", 3 * pow2(-26), 0x0001},
		{"subnormal tie rounds to even", 3 * pow2(-25), 0x0002},
		{"underflow", pow2(-26), 0x0000},
		{"tie rounds down to even", 1 + pow2(-11), 0x3C00},
		{"tie rounds up to even", 1 + 3*pow2(-11), 0x3C02},
		{"just above tie rounds up", 1 + pow2(-11) + pow2(-20), 0x3C01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := FromFloat16(nil, []float32{tt.in})
			if got := binary.LittleEndian.Uint16(tn.Data); got != tt.want {
				t.Fatalf("bits = %#04x, want %#04x", got, tt.want)
			}
			back, err := tn.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if want := halfToFloat(tt.want); math.Float32bits(back[0]) != math.Float32bits(want) {
				t.Errorf("decoded %v, want %v", back[0], want)
			}
		})
	}

	t.Run("NaN stays NaN", func(t *testing.T) {
		for _, bits := range []uint32{0x7FC00000, 0x7F800001, 0xFFFFFFFF} {
			tn := FromFloat16(nil, []float32{math.Float32frombits(bits)})
			h := binary.LittleEndian.Uint16(tn.Data)
			if h&0x7C00 != 0x7C00 || h&0x03FF == 0 {
				t.Errorf("float32 %#08x -> half %#04x, not a NaN", bits, h)
			}
			back, err := tn.Float32s()
			if err != nil || !math.IsNaN(float64(back[0])) {
				t.Errorf("decoded %v, %v; want NaN", back, err)
			}
		}
	})
}

// halfToFloat is an independent reference decoder for IEEE binary16, so the
// test does not only check the library against itself.
func halfToFloat(h uint16) float32 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1F
	frac := float64(h & 0x3FF)
	switch exp {
	case 0:
		return float32(sign * math.Ldexp(frac, -24))
	case 0x1F:
		if frac != 0 {
			return float32(math.NaN())
		}
		return float32(math.Inf(int(sign)))
	default:
		return float32(sign * math.Ldexp(1+frac/1024, exp-15))
	}
}

func TestFloat32s(t *testing.T) {
	le16 := func(vs ...uint16) []byte {
		b := make([]byte, 2*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	le64 := func(vs ...float64) []byte {
		b := make([]byte, 8*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	}
	inf := float32(math.Inf(1))
	tests := []struct {
		name    string
		tensor  Tensor
		want    []float32
		wantErr error
	}{
		{"F32", FromFloat32([]int64{3}, []float32{1.5, -0.25, inf}), []float32{1.5, -0.25, inf}, nil},
		{"F16", Tensor{DType: F16, Shape: []int64{3}, Data: le16(0x3C00, 0xC000, 0x7C00)}, []float32{1, -2, inf}, nil},
		{"BF16", Tensor{DType: BF16, Shape: []int64{3}, Data: le16(0x3F80, 0xC000, 0x7F80)}, []float32{1, -2, inf}, nil},
		{"F64", Tensor{DType: F64, Shape: []int64{3}, Data: le64(1.5, -2, 1e300)}, []float32{1.5, -2, inf}, nil},
		{"zero size", FromFloat32([]int64{0, 3}, nil), []float32{}, nil},
		{"integer dtype", Tensor{DType: I32, Shape: []int64{1}, Data: make([]byte, 4)}, nil, ErrUnsupported},
		{"short data", Tensor{DType: F32, Shape: []int64{2}, Data: make([]byte, 4)}, nil, ErrSizeMismatch},
		{"unknown dtype", Tensor{DType: "F8", Shape: []int64{1}, Data: make([]byte, 1)}, nil, ErrUnknownDType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tensor.Float32s()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("[%d] = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFromFloat32CopiesShape(t *testing.T) {
	shape := []int64{2}
	tn := FromFloat32(shape, []float32{1, 2})
	shape[0] = 99
	if tn.Shape[0] != 2 {
		t.Fatalf("tensor shape aliases caller slice: %v", tn.Shape)
	}
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
}
