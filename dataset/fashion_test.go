package dataset_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/scene"
)

func TestLoadReal(t *testing.T) {
	dir := dataDir(t)
	for _, tc := range []struct {
		split    dataset.Split
		n        int
		perClass int
	}{{dataset.Test, 10000, 1000}, {dataset.Train, 60000, 6000}} {
		t.Run(string(tc.split), func(t *testing.T) {
			set, err := dataset.Load(dir, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != tc.n || len(set.Pixels) != tc.n*scene.ItemPixels {
				t.Fatalf("Len = %d, %d pixels; want %d items", set.Len(), len(set.Pixels), tc.n)
			}
			var counts [scene.NumClasses]int
			for i := range set.Len() {
				counts[set.Label(i)]++
			}
			for c, n := range counts {
				if n != tc.perClass {
					t.Errorf("class %s has %d items, want %d", scene.ClassNames[c], n, tc.perClass)
				}
			}
			// Native polarity: the item is light on a 0 background, so the corners are 0.
			for _, i := range []int{0, tc.n / 2, tc.n - 1} {
				img := set.Image(i)
				if img[0] != 0 || img[scene.ItemPixels-1] != 0 || allZero(img[:]) {
					t.Errorf("item %d: corners %d,%d; expected a 0 background and some foreground", i, img[0], img[scene.ItemPixels-1])
				}
			}
		})
	}
}

// allZero reports whether every pixel is 0.
func allZero(p []uint8) bool { return bytes.Count(p, []byte{0}) == len(p) }

// idx builds a gzip IDX file: magic, then dims, then data.
func idx(t *testing.T, magic uint32, dims []uint32, data []byte) []byte {
	t.Helper()
	var raw bytes.Buffer
	if err := binary.Write(&raw, binary.BigEndian, append([]uint32{magic}, dims...)); err != nil {
		t.Fatal(err)
	}
	raw.Write(data)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes()
}

func TestLoadErrors(t *testing.T) {
	const n = 3
	goodImages := func(t *testing.T) []byte { return idx(t, 2051, []uint32{n, 28, 28}, make([]byte, n*784)) }
	goodLabels := func(t *testing.T) []byte { return idx(t, 2049, []uint32{n}, []byte{0, 5, 9}) }
	tests := []struct {
		name           string
		images, labels func(t *testing.T) []byte // nil: file absent
		code           cachet.Code
		want           []string
	}{
		{"valid", goodImages, goodLabels, "", nil},
		{"images magic", func(t *testing.T) []byte { return idx(t, 2049, []uint32{n, 28, 28}, make([]byte, n*784)) }, goodLabels,
			cachet.CodeInvalidArgument, []string{"t10k-images-idx3-ubyte.gz", "magic number 2049, want 2051"}},
		{"labels magic", goodImages, func(t *testing.T) []byte { return idx(t, 2051, []uint32{n}, []byte{0, 1, 2}) },
			cachet.CodeInvalidArgument, []string{"t10k-labels-idx1-ubyte.gz", "magic number 2051, want 2049"}},
		{"dims", func(t *testing.T) []byte { return idx(t, 2051, []uint32{n, 32, 28}, make([]byte, n*32*28)) }, goodLabels,
			cachet.CodeInvalidArgument, []string{"dimension 1 is 32, want 28"}},
		{"count mismatch", goodImages, func(t *testing.T) []byte { return idx(t, 2049, []uint32{2}, []byte{0, 1}) },
			cachet.CodeInvalidArgument, []string{"holds 3 images", "holds 2 labels"}},
		{"truncated", func(t *testing.T) []byte { return idx(t, 2051, []uint32{n, 28, 28}, make([]byte, n*784-1)) }, goodLabels,
			cachet.CodeInvalidArgument, []string{"truncated", "3 items"}},
		{"trailing data", goodImages, func(t *testing.T) []byte { return idx(t, 2049, []uint32{n}, []byte{0, 1, 2, 3}) },
			cachet.CodeInvalidArgument, []string{"continues past the 3 items"}},
		{"label range", goodImages, func(t *testing.T) []byte { return idx(t, 2049, []uint32{n}, []byte{0, 10, 2}) },
			cachet.CodeInvalidArgument, []string{"label 10 of item 1"}},
		{"not gzip", func(*testing.T) []byte { return []byte("not a gzip file") }, goodLabels,
			cachet.CodeInvalidArgument, []string{"not a gzip file"}},
		{"huge count", func(t *testing.T) []byte { return idx(t, 2051, []uint32{1 << 30, 28, 28}, nil) }, goodLabels,
			cachet.CodeInvalidArgument, []string{"claims 1073741824 items"}},
		{"labels missing", goodImages, nil, cachet.CodeNotFound, []string{"t10k-labels-idx1-ubyte.gz is missing", "dataset-fashion-mnist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, build := range map[string]func(*testing.T) []byte{
				"t10k-images-idx3-ubyte.gz": tc.images, "t10k-labels-idx1-ubyte.gz": tc.labels,
			} {
				if build == nil {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), build(t), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := dataset.Load(dir, dataset.Test)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if set.Len() != n || set.Label(2) != 9 {
					t.Fatalf("Len %d, Label(2) %d", set.Len(), set.Label(2))
				}
				return
			}
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}

func TestLoadBadArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := dataset.Load(missing, dataset.Test)
	checkErr(t, err, cachet.CodeNotFound, missing, "dataset-fashion-mnist", "make toolchain")
	_, err = dataset.Load(t.TempDir(), dataset.Split("validation"))
	checkErr(t, err, cachet.CodeInvalidArgument, `"validation"`, `"train"`, `"test"`)
}

func checkErr(t *testing.T, err error, code cachet.Code, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if got := cachet.CodeOf(err); got != code {
		t.Fatalf("code %s, want %s: %v", got, code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q lacks %q", err, f)
		}
	}
}
