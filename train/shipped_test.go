package train_test

import (
	"context"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
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
		if res, err = m.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Seed: 1, Steps: 10, Guidance: cachet.DefaultGuidance, CleanRenorm: cachet.DefaultCleanRenorm}); err != nil {
			return err
		}
		ev, _, err := model.LoadClassifier("../weights/evaluator.safetensors", model.CPU)
		if err != nil {
			return err
		}
		defer ev.Close()
		var items []uint8
		per := scene.CanvasPixels
		for i, p := range prompts {
			img, err := scene.FromModelUnits(res.Pixels[i*per : (i+1)*per])
			if err != nil {
				return err
			}
			s, err := scene.Parse(p)
			if err != nil {
				return err
			}
			item, err := scene.Derender(&img, s)
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
		s, _ := scene.Parse(p)
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

// The shipped adapters load on the shipped base (their recorded base id matches it) and draw a subject
// closer to its reference than the base alone does: for 4 unseen test-split items, each under
// "a large {class}" (the reference's own scene), 20 steps, the same noise with and without the adapters,
// the mean SSIM of the generated canvas to the reference canvas must rise. Deterministic: fixed seeds,
// weights and thread count.
func TestShippedAdaptersDrawTheSubject(t *testing.T) {
	const weights, adapterFile = "../weights/base.safetensors", "../weights/adapters.safetensors"
	baseID, err := featurecache.WeightsID(weights)
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.Load(dataset.DefaultDir, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := model.NewWorker(false)
	defer w.Close()
	m, release, err := model.LoadOn(ctx, w, weights)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var set *adapters.Set
	if err := w.Do(ctx, func() error { set, err = adapters.Load(adapterFile, m, baseID); return err }); err != nil {
		t.Fatal(err)
	}
	defer w.Do(ctx, func() error { set.Close(); return nil }) //nolint:errcheck // closing
	ex, err := featurecache.NewExtractor(w, m, baseID, set.CacheConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	var refs []*featurecache.Features
	var canvases [][]float32
	var prompts []string
	for _, i := range []int{3, 10, 21, 40} { // four classes: trouser, coat, sandal, bag
		c, err := scene.Render(test.Image(i), scene.Canonical(test.Label(i)))
		if err != nil {
			t.Fatal(err)
		}
		canvases = append(canvases, scene.ModelUnits(c[:]))
		prompts = append(prompts, scene.Format(scene.Canonical(test.Label(i))))
	}
	if refs, err = ex.Extract(ctx, canvases); err != nil {
		t.Fatal(err)
	}
	sample := func(personal bool) [][]float32 {
		var res *model.SampleResult
		err := w.Do(ctx, func() error {
			req := model.SampleRequest{Prompts: prompts, Seed: 5, Steps: 20, Guidance: cachet.DefaultSubjectGuidance, CleanRenorm: cachet.DefaultCleanRenorm}
			if personal {
				inj, done, err := set.RowHooks(refs, model.GuideReference)
				if err != nil {
					return err
				}
				defer done()
				req.Inject = inj
			}
			var err error
			res, err = m.Sample(ctx, req)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		per := scene.CanvasPixels
		out := make([][]float32, res.N)
		for i := range out {
			out[i] = res.Pixels[i*per : (i+1)*per]
		}
		return out
	}
	adapted, plain := sample(true), sample(false)
	side := scene.CanvasSide
	ssimAdapted, err := eval.MeanSSIM(adapted, canvases, side, side, 2)
	if err != nil {
		t.Fatal(err)
	}
	ssimPlain, err := eval.MeanSSIM(plain, canvases, side, side, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SSIM to the references: adapted %.3f, base alone %.3f", ssimAdapted, ssimPlain)
	if !(ssimAdapted > ssimPlain+0.05) {
		t.Errorf("the adapters do not draw the subject: SSIM %.3f with them, %.3f without", ssimAdapted, ssimPlain)
	}
}
