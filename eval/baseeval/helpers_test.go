package baseeval_test

import (
	"github.com/cachetlab/cachet/dataset/datasettest"
	"sync"
	"testing"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/scene"
)

func dataDir(t testing.TB) string { return datasettest.Dir(t) }

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
	var scenes []scene.Scene
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
