package safetensors

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// build assembles a file from a literal header and data section, without
// any of Encode's validation or padding.
func build(header string, body []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

// withLen is build with a lying header length.
func withLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

func TestDecodeRejects(t *testing.T) {
	f16 := func(name, offsets string) string {
		return `"` + name + `":{"dtype":"F16","shape":[2],"data_offsets":` + offsets + `}`
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		wantMsg string // must appear in the message, usually the tensor name
	}{
		{"empty input", nil, ErrTruncated, "need at least 8"},
		{"short length prefix", []byte{1, 0, 0}, ErrTruncated, "3 bytes"},
		{"header past end", withLen(10, "{}"), ErrTruncated, "header length 10"},
		{"header length huge", withLen(1<<63, "{}"), ErrHeaderTooLarge, "exceeds"},
		{"header over 100MB", withLen(100_000_001, "{}"), ErrHeaderTooLarge, "100000001"},
		{"empty header", build("", nil), ErrInvalidHeader, "start with"},
		{"not JSON", build("hello", nil), ErrInvalidHeader, "start with"},
		{"header is array", build("[]", nil), ErrInvalidHeader, "start with"},
		{"leading space", build(" {}", nil), ErrInvalidHeader, "start with"},
		{"truncated JSON", build(`{"a":`, nil), ErrInvalidHeader, `"a"`},
		{"unterminated object", build(`{"__metadata__":{}`, nil), ErrInvalidHeader, "EOF"},
		{"missing colon", build(`{"a" 1}`, nil), ErrInvalidHeader, ""},
		{"trailing comma", build(`{"__metadata__":{},}`, nil), ErrInvalidHeader, ""},
		{"trailing newline", build("{}\n", nil), ErrInvalidHeader, "offset 2"},
		{"second JSON value", build("{} {}", nil), ErrInvalidHeader, "offset 3"},
		{"invalid UTF-8", build("{\"\xff\":1}", nil), ErrInvalidHeader, "UTF-8"},
		{"entry not object", build(`{"w":[1]}`, nil), ErrInvalidHeader, `"w"`},
		{"unknown dtype", build(`{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), ErrUnknownDType, `"w"`},
		{"lowercase dtype", build(`{"w":{"dtype":"f32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrUnknownDType, `"f32"`},
		{"dtype null", build(`{"w":{"dtype":null,"shape":[1],"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, `"w"`},
		{"negative dim", build(`{"w":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}}`, nil), ErrInvalidShape, `"w"`},
		{"overflowing shape", build(`{"w":{"dtype":"U8","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, nil), ErrInvalidShape, `"w"`},
		{"overflowing byte length", build(`{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, nil), ErrInvalidShape, `"w"`},
		{"dim beyond int64", build(`{"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}}`, nil), ErrInvalidHeader, `"w"`},
		{"shape null", build(`{"w":{"dtype":"U8","shape":null,"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, "shape"},
		{"shape float", build(`{"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, "1.0"},
		{"shape exponent", build(`{"w":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, "1e0"},
		{"shape null element", build(`{"w":{"dtype":"U8","shape":[null],"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, "null"},
		{"shape string element", build(`{"w":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}`, []byte{0}), ErrInvalidHeader, `"w"`},
		{"one offset", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, []byte{0}), ErrInvalidOffsets, "got 1"},
		{"three offsets", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,1]}}`, []byte{0}), ErrInvalidOffsets, "got 3"},
		{"offsets not array", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":{}}}`, []byte{0}), ErrInvalidHeader, "data_offsets"},
		{"negative offset", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, []byte{0}), ErrInvalidOffsets, "negative"},
		{"end before begin", build(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, []byte{0}), ErrInvalidOffsets, "before begin"},
		{"out of bounds", build(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, []byte{0, 0}), ErrInvalidOffsets, "out of bounds"},
		{"span too short", build(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrSizeMismatch, `"w"`},
		{"span too long", build(`{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrSizeMismatch, `"w"`},
		{"overlap", build(`{`+f16("a", "[0,4]")+`,`+f16("b", "[2,6]")+`}`, make([]byte, 6)), ErrOverlap, `"b"[...]overlaps tensor "a"`},
		{"same range twice", build(`{`+f16("a", "[0,4]")+`,`+f16("b", "[0,4]")+`}`, make([]byte, 4)), ErrOverlap, `"a"`},
		{"zero size inside tensor", build(`{`+f16("a", "[0,4]")+`,"z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}`, make([]byte, 4)), ErrOverlap, `"z"`},
		{"gap between", build(`{`+f16("a", "[0,4]")+`,`+f16("b", "[6,10]")+`}`, make([]byte, 10)), ErrGap, `"b"`},
		{"gap at start", build(`{`+f16("a", "[2,6]")+`}`, make([]byte, 6)), ErrGap, "[0, 2]"},
		{"trailing bytes", build(`{`+f16("a", "[0,4]")+`}`, make([]byte, 5)), ErrGap, "1 trailing"},
		{"data without tensors", build(`{}`, []byte{0}), ErrGap, "1 trailing"},
		{"metadata not object", build(`{"__metadata__":["a"]}`, nil), ErrInvalidMetadata, "object"},
		{"metadata null", build(`{"__metadata__":null}`, nil), ErrInvalidMetadata, "object"},
		{"metadata number value", build(`{"__metadata__":{"epoch":3}}`, nil), ErrInvalidMetadata, `"epoch"`},
		{"metadata null value", build(`{"__metadata__":{"k":null}}`, nil), ErrInvalidMetadata, `"k"`},
		{"metadata nested value", build(`{"__metadata__":{"k":{"x":"y"}}}`, nil), ErrInvalidMetadata, `"k"`},
		{"duplicate tensor", build(`{`+f16("a", "[0,4]")+`,`+f16("a", "[0,4]")+`}`, make([]byte, 4)), ErrDuplicateKey, `"a"`},
		{"duplicate metadata section", build(`{"__metadata__":{},"__metadata__":{}}`, nil), ErrDuplicateKey, `"__metadata__"`},
		{"duplicate metadata key", build(`{"__metadata__":{"k":"1","k":"2"}}`, nil), ErrDuplicateKey, `"k"`},
		{"duplicate field", build(`{"w":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil), ErrDuplicateKey, `tensor "w"`},
		{"unknown field", build(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"stride":[1]}}`, nil), ErrInvalidHeader, `"stride"`},
		{"missing dtype", build(`{"w":{"shape":[0],"data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "missing dtype"},
		{"missing shape", build(`{"w":{"dtype":"U8","data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "missing shape"},
		{"missing offsets", build(`{"w":{"dtype":"U8","shape":[0]}}`, nil), ErrInvalidHeader, "missing data_offsets"},
		{"empty tensor name", build(`{"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil), ErrInvalidName, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v (file %+v)", err, tt.wantErr, f)
			}
			msg := err.Error()
			t.Log(msg) // visible with -v, to eyeball message quality
			if !strings.HasPrefix(msg, "safetensors: ") || strings.Count(msg, "safetensors:") != 1 {
				t.Errorf("error %q should carry the package prefix exactly once", msg)
			}
			// "[...]" in wantMsg skips the offsets, which are incidental.
			for _, part := range strings.Split(tt.wantMsg, "[...]") {
				if !strings.Contains(msg, part) {
					t.Errorf("error %q does not mention %q", msg, part)
				}
			}
		})
	}
}

// TestDecodeAccepts covers valid files that Encode would not produce byte
// for byte: other writers' whitespace, layout order and padding choices.
func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		names []string
	}{
		{"empty header object", build("{}", nil), nil},
		{"unpadded header", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{9}), []string{"w"}},
		{"space padding", build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`+"     ", []byte{9}), []string{"w"}},
		{"pretty printed", build("{\n  \"w\" : {\n\t\"dtype\": \"U8\" ,\r\n \"shape\" : [ 1 ], \"data_offsets\": [0, 1]}\n}", []byte{9}), []string{"w"}},
		{"fields in other order", build(`{"w":{"shape":[1],"data_offsets":[0,1],"dtype":"U8"}}`, []byte{9}), []string{"w"}},
		{"data not in name order", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}), []string{"a", "b"}},
		{"zero size at boundaries", build(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"F32","shape":[0,5],"data_offsets":[1,1]}}`, []byte{7}), []string{"a", "b", "c"}},
		{"metadata after tensors", build(`{"w":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"__metadata__":{"k":"\u00e9"}}`, []byte{9}), []string{"w"}},
		{"negative zero", build(`{"w":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}`, nil), []string{"w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); strings.Join(got, ",") != strings.Join(tt.names, ",") {
				t.Fatalf("names = %v, want %v", got, tt.names)
			}
			b, err := Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalFile(f, g) {
				t.Fatalf("re-encode changed the file: %+v vs %+v", f, g)
			}
		})
	}
}

func TestDecodeTensorData(t *testing.T) {
	in := build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2})
	f, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want byte
	}{{"a", 2}, {"b", 1}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.Tensors[tt.name].Data
			if len(d) != 1 || d[0] != tt.want {
				t.Fatalf("data = %v, want [%d]", d, tt.want)
			}
			if cap(d) != 1 {
				t.Errorf("cap = %d; an append could overwrite the next tensor", cap(d))
			}
		})
	}
}
