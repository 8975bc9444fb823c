package dataset_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cachetlab/cachet/dataset"
)

// dataDir finds the Fashion-MNIST files: DefaultDir on Debian 13+, else inside the toolchain rootfs that
// provisioning builds on Debian 12. The data is part of the toolchain, so its absence is a failure.
func dataDir(t testing.TB) string {
	t.Helper()
	rootfs := os.Getenv("CACHET_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/cache/cachet/rootfs-trixie"
	}
	for _, dir := range []string{dataset.DefaultDir, filepath.Join(rootfs, dataset.DefaultDir)} {
		if _, err := os.Stat(filepath.Join(dir, "t10k-images-idx3-ubyte.gz")); err == nil {
			return dir
		}
	}
	t.Fatalf("Fashion-MNIST not found in %s or under %s: run `make toolchain` (installs dataset-fashion-mnist)",
		dataset.DefaultDir, rootfs)
	return ""
}

var (
	testSetOnce sync.Once
	testSet     *dataset.Set
	testSetErr  error
)

// loadTest loads the test split once per test binary.
func loadTest(t testing.TB) *dataset.Set {
	t.Helper()
	dir := dataDir(t)
	testSetOnce.Do(func() { testSet, testSetErr = dataset.Load(dir, dataset.Test) })
	if testSetErr != nil {
		t.Fatalf("Load(%s, test): %v", dir, testSetErr)
	}
	return testSet
}
