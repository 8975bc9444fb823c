package dataset_test

import (
	"github.com/cachetlab/cachet/dataset/datasettest"
	"testing"

	"github.com/cachetlab/cachet/dataset"
)

func dataDir(t testing.TB) string { return datasettest.Dir(t) }

// loadTest is the test split, loaded once per test binary.
func loadTest(t testing.TB) *dataset.Set { return datasettest.TestSplit(t) }
