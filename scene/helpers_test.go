package scene_test

import (
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/dataset/datasettest"
)

func dataDir(t testing.TB) string { return datasettest.Dir(t) }

// loadTest is the test split, loaded once per test binary.
func loadTest(t testing.TB) *dataset.Set { return datasettest.TestSplit(t) }

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
