package baseeval

import (
	"context"

	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// sampleBatch draws scenes — prompts start, start+1, … of req.Seed — with req's settings (its Steps the
// budget an image), as the service would. With a detail redraw the large scenes take the whole budget and
// the small ones a draft of d.DraftSteps, then the redraw (generate.RedrawSmall). Each image keeps its own
// noise stream whatever group it is drawn in. newCache gives each draft its step-cache policy (nil: none).
// classContrast > 0 pushes each prompt from itself less its class word.
func sampleBatch(ctx context.Context, w *model.Worker, m *model.DiT, req model.SampleRequest, newCache func() (model.StepCache, error), d generate.Detail,
	classContrast float64, scenes []scene.Scene, start int) ([][scene.CanvasPixels]uint8, error) {
	sample := func(r model.SampleRequest) (res *model.SampleResult, err error) {
		err = w.Do(ctx, func() error { res, err = m.Sample(ctx, r); return err })
		return res, err
	}
	var whole, small []int
	for i, s := range scenes {
		if d.Strength > 0 && !s.Large {
			small = append(small, i)
		} else {
			whole = append(whole, i)
		}
	}
	per := scene.CanvasPixels
	imgs := make([][scene.CanvasPixels]uint8, len(scenes))
	for _, group := range [][]int{whole, small} {
		if len(group) == 0 {
			continue
		}
		r := req
		r.Prompts, r.NegativePrompts, r.Noise, r.NegativeGuidance = nil, nil, nil, classContrast
		sub := make([]scene.Scene, len(group))
		for k, i := range group {
			sub[k] = scenes[i]
			r.Prompts = append(r.Prompts, scene.Format(scenes[i]))
			if classContrast > 0 {
				r.NegativePrompts = append(r.NegativePrompts, scene.FormatWithoutClass(scenes[i]))
			}
			r.Noise = append(r.Noise, Noise(req.Seed, start+i, 1, per)...)
		}
		if len(small) > 0 && group[0] == small[0] {
			r.Steps = d.DraftSteps(req.Steps)
		}
		var err error
		if r.Cache, err = newCache(); err != nil { // a policy keeps per-request state
			return nil, err
		}
		res, err := sample(r)
		if err != nil {
			return nil, err
		}
		out, err := scene.CanvasesFromModelUnits(res.Pixels)
		if err != nil {
			return nil, err
		}
		if err := generate.RedrawSmall(sample, r, d, sub, out, nil); err != nil { // a no-op for the whole group
			return nil, err
		}
		for k, i := range group {
			imgs[i] = out[k]
		}
	}
	return imgs, nil
}
