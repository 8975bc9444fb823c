package baseeval_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/baseeval"
)

// dataDir finds Fashion-MNIST: DefaultDir (inside the toolchain rootfs, where tests run), else the rootfs
// seen from the host. The data is part of the toolchain, so its absence is a failure.
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
	t.Fatalf("Fashion-MNIST not found in %s or under %s: run `make toolchain`", dataset.DefaultDir, rootfs)
	return ""
}

var (
	dataOnce sync.Once
	trainSet *dataset.Set
	testSet  *dataset.Set
	detector *baseeval.MirrorDetector
	dataErr  error
)

// data loads both splits and the mirror detector once per test binary.
func data(t testing.TB) (test *dataset.Set, det *baseeval.MirrorDetector) {
	t.Helper()
	dir := dataDir(t)
	dataOnce.Do(func() {
		if trainSet, dataErr = dataset.Load(dir, dataset.Train); dataErr != nil {
			return
		}
		detector = baseeval.NewMirrorDetector(trainSet)
		testSet, dataErr = dataset.Load(dir, dataset.Test)
	})
	if dataErr != nil {
		t.Fatal(dataErr)
	}
	return testSet, detector
}

// realJudgements renders the full prompt set × seeds with real test items and judges them.
func realJudgements(t testing.TB, seeds int, stream uint64) []baseeval.Judgement {
	t.Helper()
	test, det := data(t)
	var scenes []dataset.Scene
	for range seeds {
		scenes = append(scenes, baseeval.Prompts(0)...)
	}
	imgs, err := baseeval.RealScenes(test, scenes, stream)
	if err != nil {
		t.Fatal(err)
	}
	js, err := baseeval.JudgeAll(imgs, scenes, det)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
