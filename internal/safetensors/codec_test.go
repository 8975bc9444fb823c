package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// equalFile compares Files treating nil and empty maps/shapes as equal,
// since Decode always returns non-nil values.
func equalFile(a, b File) bool {
	if len(a.Metadata) != len(b.Metadata) || len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	for name, ta := range a.Tensors {
		tb, ok := b.Tensors[name]
		if !ok || ta.DType != tb.DType || !bytes.Equal(ta.Data, tb.Data) || len(ta.Shape) != len(tb.Shape) {
			return false
		}
		for i := range ta.Shape {
			if ta.Shape[i] != tb.Shape[i] {
				return false
			}
		}
	}
	return true
}

// seq returns n bytes with distinct values so misplaced data is detected.
func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// allDTypesFile has one tensor per dtype plus scalar, zero-size and
// metadata cases.
func allDTypesFile() File {
	return File{
		Metadata: map[string]string{"format": "pt", "note": "a<b & \"quoted\" é \n"},
		Tensors: map[string]Tensor{
			"f64":         {DType: F64, Shape: []int64{2}, Data: seq(16, 1)},
			"f32":         FromFloat32([]int64{2, 2}, []float32{1, -2, 3.5, 0}),
			"f16":         FromFloat16([]int64{3}, []float32{1, 0.5, -65504}),
			"bf16":        {DType: BF16, Shape: []int64{1, 2}, Data: seq(4, 20)},
			"i64":         {DType: I64, Shape: []int64{1}, Data: seq(8, 30)},
			"i32":         {DType: I32, Shape: []int64{2}, Data: seq(8, 40)},
			"i16":         {DType: I16, Shape: []int64{3}, Data: seq(6, 50)},
			"i8":          {DType: I8, Shape: []int64{5}, Data: seq(5, 60)},
			"u8":          {DType: U8, Shape: []int64{1, 1, 3}, Data: seq(3, 70)},
			"bool":        {DType: Bool, Shape: []int64{2}, Data: []byte{0, 1}},
			"scalar":      FromFloat32(nil, []float32{42}),
			"empty":       {DType: F32, Shape: []int64{0}, Data: nil},
			"empty_mid":   {DType: I64, Shape: []int64{3, 0, 2}, Data: []byte{}},
			"layer.0/w<1": FromFloat32([]int64{1}, []float32{7}),
		},
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file File
	}{
		{"no tensors", File{}},
		{"metadata only", File{Metadata: map[string]string{"k": "v", "": ""}}},
		{"scalar", File{Tensors: map[string]Tensor{"s": FromFloat32([]int64{}, []float32{3})}}},
		{"zero size only", File{Tensors: map[string]Tensor{"z": {DType: U8, Shape: []int64{0}}}}},
		{"all dtypes", allDTypesFile()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(b); n%8 != 0 {
				t.Errorf("header length %d not a multiple of 8", n)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalFile(tt.file, got) {
				t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, tt.file)
			}
			if got.Metadata == nil || got.Tensors == nil {
				t.Error("Decode returned nil maps")
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	f := allDTypesFile()
	first, err := Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // map iteration order varies run to run
		again, err := Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("encoding %d differs from the first", i)
		}
	}
	// Re-encoding a decoded file must also reproduce the bytes exactly.
	dec, err := Decode(first)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Marshal(dec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatal("decode+encode changed the bytes")
	}
}

// TestGolden checks one tiny file byte by byte against the format spec.
func TestGolden(t *testing.T) {
	f := File{
		Metadata: map[string]string{"k": "v"},
		Tensors:  map[string]Tensor{"a": FromFloat32([]int64{2}, []float32{1, -2})},
	}
	// 79-byte header: sorted keys, compact JSON, then 1 space to reach 80.
	header := `{"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}` + " "
	want := []byte{80, 0, 0, 0, 0, 0, 0, 0} // little-endian uint64 header length
	want = append(want, header...)
	want = append(want,
		0x00, 0x00, 0x80, 0x3F, // 1.0f
		0x00, 0x00, 0x00, 0xC0, // -2.0f
	)
	if len(header) != 80 {
		t.Fatalf("test bug: header is %d bytes", len(header))
	}
	got, err := Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("golden mismatch:\n got %q\nwant %q", got, want)
	}
	back, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !equalFile(f, back) {
		t.Fatalf("decoded golden = %+v", back)
	}
}

func TestEncodeRejects(t *testing.T) {
	one := func(name string, tn Tensor) File { return File{Tensors: map[string]Tensor{name: tn}} }
	tests := []struct {
		name    string
		file    File
		wantErr error
		wantMsg string
	}{
		{"unknown dtype", one("w", Tensor{DType: "F8", Data: []byte{0}}), ErrUnknownDType, `"w"`},
		{"short data", one("w", FromFloat32([]int64{3}, []float32{1, 2})), ErrSizeMismatch, `"w"`},
		{"long data", one("w", Tensor{DType: U8, Shape: []int64{1}, Data: []byte{1, 2}}), ErrSizeMismatch, `"w"`},
		{"negative dim", one("w", Tensor{DType: U8, Shape: []int64{-1}}), ErrInvalidShape, `"w"`},
		{"overflowing shape", one("w", Tensor{DType: U8, Shape: []int64{1 << 62, 4}}), ErrInvalidShape, `"w"`},
		{"overflowing bytes", one("w", Tensor{DType: F64, Shape: []int64{1 << 61}}), ErrInvalidShape, `"w"`},
		{"empty name", one("", FromFloat32(nil, []float32{1})), ErrInvalidName, "empty"},
		{"reserved name", one("__metadata__", FromFloat32(nil, []float32{1})), ErrInvalidName, "reserved"},
		{"invalid UTF-8 name", one("w\xff", FromFloat32(nil, []float32{1})), ErrInvalidName, "UTF-8"},
		{"invalid UTF-8 metadata", File{Metadata: map[string]string{"k": "\xc3"}}, ErrInvalidMetadata, `"k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, tt.file)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.wantMsg)) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

type failWriter struct{}

var errDiskFull = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestEncodeWriteError(t *testing.T) {
	if err := Encode(failWriter{}, allDTypesFile()); !errors.Is(err, errDiskFull) {
		t.Fatalf("err = %v, want wrapped write error", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	b, err := Marshal(allDTypesFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, b[:len(b)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"valid", good, nil},
		{"truncated", bad, ErrInvalidOffsets},
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ReadFile(tt.path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !equalFile(f, allDTypesFile()) {
				t.Error("contents differ")
			}
			if err != nil && tt.wantErr != os.ErrNotExist && !bytes.Contains([]byte(err.Error()), []byte(tt.path)) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}
