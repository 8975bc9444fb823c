package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/cachetlab/cachet/scene"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cachetlab/cachet"
)

// DefaultDir is where Debian's dataset-fashion-mnist package installs the data.
const DefaultDir = "/usr/share/datasets/fashion-mnist"

// Split selects the training or the test half of Fashion-MNIST.
type Split string

const (
	Train Split = "train" // 60,000 items
	Test  Split = "test"  // 10,000 items
)

// filePrefix maps a split to the IDX file names' prefix (the test files are called t10k-…).
func (s Split) filePrefix() (string, error) {
	switch s {
	case Train:
		return "train", nil
	case Test:
		return "t10k", nil
	}
	return "", cachet.Errorf(cachet.CodeInvalidArgument, "unknown Fashion-MNIST split %q; use %q or %q", string(s), Train, Test)
}

const (
	imagesMagic = 2051 // IDX: unsigned bytes, 3 dimensions
	labelsMagic = 2049 // IDX: unsigned bytes, 1 dimension
	// maxItems bounds the allocation a corrupt header can ask for (the real files hold 60,000 and 10,000).
	maxItems = 1 << 20
)

// Set is one split in memory. Pixels is flat (scene.ItemPixels bytes per item, row-major, background 0) so that
// loading makes two allocations instead of 60,000; Image hands out views into it.
type Set struct {
	Pixels []uint8
	Labels []uint8
}

// Len is the number of items.
func (s *Set) Len() int { return len(s.Labels) }

// Image is item i's 28×28 pixels, a view into Pixels: callers must not modify it.
func (s *Set) Image(i int) *[scene.ItemPixels]uint8 {
	return (*[scene.ItemPixels]uint8)(s.Pixels[i*scene.ItemPixels : (i+1)*scene.ItemPixels])
}

// Label is item i's class, an index into scene.ClassNames.
func (s *Set) Label(i int) int { return int(s.Labels[i]) }

// Load reads one split's gzip IDX files from dir (normally DefaultDir). A missing directory or file is
// CodeNotFound with the install hint; a file that is not what Fashion-MNIST ships is CodeInvalidArgument
// naming the file and what is wrong with it.
func Load(dir string, split Split) (*Set, error) {
	prefix, err := split.filePrefix()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, cachet.Wrap(cachet.CodeNotFound, err,
			"Fashion-MNIST is not installed at %s: install Debian's dataset-fashion-mnist package (run `make toolchain`)", dir)
	}
	imagesPath := filepath.Join(dir, prefix+"-images-idx3-ubyte.gz")
	labelsPath := filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz")
	pixels, n, err := readIDX(imagesPath, imagesMagic, []uint32{scene.ItemSide, scene.ItemSide})
	if err != nil {
		return nil, err
	}
	labels, m, err := readIDX(labelsPath, labelsMagic, nil)
	if err != nil {
		return nil, err
	}
	if n != m {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument,
			"%s holds %d images but %s holds %d labels; reinstall dataset-fashion-mnist", imagesPath, n, labelsPath, m)
	}
	for i, l := range labels {
		if int(l) >= scene.NumClasses {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument,
				"%s: label %d of item %d is not a Fashion-MNIST class (0..%d)", labelsPath, l, i, scene.NumClasses-1)
		}
	}
	return &Set{Pixels: pixels, Labels: labels}, nil
}

// readIDX reads a gzip IDX file of unsigned bytes: the magic number, the item count, then the per-item
// dimensions (which must equal dims), then the data. It reads to EOF so that gzip verifies its checksum.
func readIDX(path string, magic uint32, dims []uint32) (data []uint8, count int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, cachet.Wrap(cachet.CodeNotFound, err,
			"%s is missing: reinstall Debian's dataset-fashion-mnist package (run `make toolchain`)", path)
	}
	if err != nil {
		return nil, 0, cachet.Wrap(cachet.CodeUnavailable, err, "cannot open %s", path)
	}
	defer f.Close()
	bad := func(cause error, format string, args ...any) ([]uint8, int, error) {
		return nil, 0, cachet.Wrap(cachet.CodeInvalidArgument, cause, "%s: %s", path, fmt.Sprintf(format, args...))
	}
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return bad(err, "not a gzip file")
	}
	defer zr.Close()

	header := make([]uint32, 2+len(dims))
	if err := binary.Read(zr, binary.BigEndian, header); err != nil {
		return bad(err, "truncated IDX header")
	}
	if header[0] != magic {
		return bad(nil, "magic number %d, want %d (is this the right file?)", header[0], magic)
	}
	n := header[1]
	if n > maxItems {
		return bad(nil, "header claims %d items, more than %d", n, maxItems)
	}
	per := 1
	for i, want := range dims {
		if got := header[2+i]; got != want {
			return bad(nil, "dimension %d is %d, want %d (Fashion-MNIST items are %d×%d)", i+1, got, want, scene.ItemSide, scene.ItemSide)
		}
		per *= int(want)
	}
	data = make([]uint8, int(n)*per)
	if _, err := io.ReadFull(zr, data); err != nil {
		return bad(err, "truncated: header promises %d items", n)
	}
	// Trailing bytes mean the header lies; reading to EOF also makes gzip check the CRC.
	var one [1]byte
	switch _, err := io.ReadFull(zr, one[:]); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return bad(err, "corrupt gzip stream")
	default:
		return bad(nil, "data continues past the %d items the header promises", n)
	}
	return data, int(n), nil
}
