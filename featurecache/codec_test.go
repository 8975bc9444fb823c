package featurecache_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/internal/safetensors"
)

func sampleFeatures(model string, tokens int, seed float32) *featurecache.Features {
	f := &featurecache.Features{Model: model, Blocks: []int{1, 3}, TRef: 10, Tokens: tokens, Width: 4}
	for b := range f.Blocks {
		d := make([]float32, tokens*4)
		for i := range d {
			d[i] = seed + float32(b) - float32(i)/7
		}
		f.Data = append(f.Data, d)
	}
	return f
}

func TestCodecRoundTripAndConcat(t *testing.T) {
	a, b := sampleFeatures("m1", 2, 0.5), sampleFeatures("m1", 3, -2)
	subject, err := featurecache.Concat([]*featurecache.Features{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if subject.Tokens != 5 || len(subject.Data[1]) != 20 || subject.Data[1][8] != b.Data[1][0] {
		t.Fatalf("concat: %d tokens, block 3 has %d values", subject.Tokens, len(subject.Data[1]))
	}
	data, err := featurecache.Encode(subject)
	if err != nil {
		t.Fatal(err)
	}
	again, err := featurecache.Encode(subject)
	if err != nil || !bytes.Equal(data, again) {
		t.Fatalf("encoding is not deterministic (err %v)", err)
	}
	got, err := featurecache.Decode(data, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "m1" || got.TRef != 10 || got.Tokens != 5 || got.Width != 4 || len(got.Blocks) != 2 || got.Blocks[1] != 3 {
		t.Fatalf("decoded header: %+v", got)
	}
	for blk := range subject.Data {
		for i, v := range subject.Data[blk] {
			// fp16 keeps 11 significant bits: relative error ≤ 2⁻¹¹.
			if d := math.Abs(float64(got.Data[blk][i] - v)); d > math.Abs(float64(v))/2048+1e-7 {
				t.Fatalf("block %d value %d: %v came back as %v", blk, i, v, got.Data[blk][i])
			}
		}
	}
	// fp16 storage: half the decoded float32 size plus a small header.
	if n := int64(len(data)); n < got.Bytes()/2 || n > got.Bytes()/2+1024 {
		t.Fatalf("encoded %d bytes for %d decoded", n, got.Bytes())
	}
}

func TestCodecRefusesOtherModelsAndCorruption(t *testing.T) {
	data, err := featurecache.Encode(sampleFeatures("m1", 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := safetensors.Marshal(safetensors.File{Tensors: map[string]safetensors.Tensor{
		"x": safetensors.FromFloat32([]int64{1}, []float32{1})}})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-1] ^= 0x40 // one bit of the last value
	tests := []struct {
		name string
		data []byte
		want cachet.Code
	}{
		{"other model", data, cachet.CodeConflict},
		{"corrupted value", flipped, cachet.CodeInvalidArgument},
		{"truncated", data[:len(data)-3], cachet.CodeInvalidArgument},
		{"a weights file", weights, cachet.CodeInvalidArgument},
		{"garbage", []byte("not a cache"), cachet.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := featurecache.Decode(tc.data, "m2")
			if tc.name != "other model" {
				_, err = featurecache.Decode(tc.data, "m1")
			}
			if cachet.CodeOf(err) != tc.want {
				t.Fatalf("Decode = %v, want code %s", err, tc.want)
			}
		})
	}
	if _, err := featurecache.Decode(data, ""); err != nil {
		t.Fatalf("an empty wanted model should accept any: %v", err)
	}
}

func TestConcatAndEncodeRejectMismatches(t *testing.T) {
	other := sampleFeatures("m1", 2, 0)
	other.Blocks = []int{1, 2}
	short := sampleFeatures("m1", 2, 0)
	short.Data[0] = short.Data[0][:3]
	tests := []struct {
		name  string
		parts []*featurecache.Features
	}{
		{"none", nil},
		{"other model", []*featurecache.Features{sampleFeatures("m1", 2, 0), sampleFeatures("m2", 2, 0)}},
		{"other blocks", []*featurecache.Features{sampleFeatures("m1", 2, 0), other}},
		{"short data", []*featurecache.Features{short}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := featurecache.Concat(tc.parts); cachet.CodeOf(err) != cachet.CodeInvalidArgument {
				t.Fatalf("Concat = %v", err)
			}
		})
	}
	if _, err := featurecache.Encode(short); err == nil {
		t.Fatal("encoded a cache whose data does not match its shape")
	}
	if _, err := featurecache.Encode(sampleFeatures("", 2, 0)); err == nil {
		t.Fatal("encoded a cache without a model id")
	}
}

// Caches made before views had no "views" entry: they are one-view caches. A view count that does not
// divide the tokens, or is out of range, is refused.
func TestCodecViews(t *testing.T) {
	data, err := featurecache.Encode(sampleFeatures("m1", 4, 0))
	if err != nil {
		t.Fatal(err)
	}
	withViews := func(v string, set bool) []byte {
		f, err := safetensors.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		delete(f.Metadata, "views")
		if set {
			f.Metadata["views"] = v
		}
		out, err := safetensors.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name      string
		data      []byte
		wantViews int // 0: refused
	}{
		{"as encoded", data, 1},
		{"made before views", withViews("", false), 1},
		{"two views", withViews("2", true), 2},
		{"seven views", withViews("7", true), 0},
		{"zero views", withViews("0", true), 0},
		{"not a number", withViews("two", true), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := featurecache.Decode(tc.data, "m1")
			if tc.wantViews == 0 {
				if cachet.CodeOf(err) != cachet.CodeInvalidArgument {
					t.Fatalf("Decode = %v, want invalid_argument", err)
				}
				return
			}
			if err != nil || f.Views != tc.wantViews {
				t.Fatalf("Decode = %v views, %v; want %d", f, err, tc.wantViews)
			}
		})
	}
}
