package dataset_test

import (
	"github.com/cachetlab/cachet/dataset/datasettest"
	"sync"
	"testing"

	"github.com/cachetlab/cachet/dataset"
)

func dataDir(t testing.TB) string { return datasettest.Dir(t) }

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
