package safetensors

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives Encode/Decode unchanged, with the re-encoding itself stable.
func FuzzDecode(f *testing.F) {
	for _, file := range []File{
		{},
		allDTypesFile(),
		{Metadata: map[string]string{"k": "v"}, Tensors: map[string]Tensor{"a": FromFloat32([]int64{2}, []float32{1, -2})}},
	} {
		b, err := Marshal(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range [][]byte{
		nil,
		build("{}", nil),
		build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}),
		build(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"__metadata__":{"x":"\u2028"}}`, nil),
		build(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"v":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}}`, make([]byte, 6)),
		build(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} `, []byte{0, 0}),
		withLen(1<<40, "{}"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Marshal(file)
		if err != nil {
			t.Fatalf("accepted file does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if !equalFile(file, again) {
			t.Fatalf("round trip changed the file:\n got %+v\nwant %+v", again, file)
		}
		enc2, err := Marshal(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable (err %v)", err)
		}
	})
}
