package train_test

import (
	"context"
	"testing"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/train"
)

// The shipped default model loads, has the architecture `cachet train base` builds, and a 4-sample,
// 10-step generation draws items the evaluator recognises as the prompted classes.
func TestShippedBaseWeightsGenerate(t *testing.T) {
	w := model.NewWorker(false)
	defer w.Close()
	prompts := []string{"a large trouser", "a large bag", "a small sneaker on the left", "a large boot, inverted"}
	var res *model.SampleResult
	var pred []int
	err := w.Do(context.Background(), func() error {
		m, _, err := model.Load("../weights/base.safetensors", model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		if got, want := m.Cfg.String(), train.BaseModelConfig().String(); got != want {
			t.Errorf("shipped model %s, want %s", got, want)
		}
		if res, err = m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Seed: 1, Steps: 10, Guidance: baseeval.DefaultGuidance}); err != nil {
			return err
		}
		ev, _, err := model.LoadClassifier("../weights/evaluator.safetensors", model.CPU)
		if err != nil {
			return err
		}
		defer ev.Close()
		var items []uint8
		per := dataset.CanvasPixels
		for i, p := range prompts {
			img, err := dataset.FromModelUnits(res.Pixels[i*per : (i+1)*per])
			if err != nil {
				return err
			}
			s, err := dataset.Parse(p)
			if err != nil {
				return err
			}
			item, err := dataset.Derender(&img, s)
			if err != nil {
				return err
			}
			items = append(items, item[:]...)
		}
		pred, _, err = ev.Predict(items, len(prompts))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 4 || len(res.StepTimes) != 10 {
		t.Fatalf("%d images, %d steps", res.N, len(res.StepTimes))
	}
	right := 0
	for i, p := range prompts {
		s, _ := dataset.Parse(p)
		if pred[i] == s.Class {
			right++
		} else {
			t.Logf("%q: the evaluator sees class %d", p, pred[i])
		}
	}
	if right < 3 {
		t.Errorf("the evaluator recognised %d of %d prompted classes at 10 steps", right, len(prompts))
	}
}
