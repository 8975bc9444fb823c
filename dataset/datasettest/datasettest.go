// Package datasettest locates and loads the Fashion-MNIST files for tests.
package datasettest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cachetlab/cachet/dataset"
)

// Dir finds the Fashion-MNIST files: DefaultDir (Debian 13+, or inside the toolchain rootfs where the tests
// run), else the rootfs seen from a Debian 12 host. The data is part of the toolchain, so its absence fails
// the test rather than skipping it.
func Dir(t testing.TB) string {
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

// TestSplit loads Fashion-MNIST's test split once per test binary.
func TestSplit(t testing.TB) *dataset.Set {
	t.Helper()
	dir := Dir(t)
	testSetOnce.Do(func() { testSet, testSetErr = dataset.Load(dir, dataset.Test) })
	if testSetErr != nil {
		t.Fatalf("Load(%s, test): %v", dir, testSetErr)
	}
	return testSet
}
