package generate

import (
	"math"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// Detail redraws small scenes' items at full size. The default model draws large items far better than
// 16-pixel ones (weights/base.md, "Small items redrawn at full size"), so a small item is cut out of the
// sample (scene.Derender), drawn as its class's canonical large scene, noised to time Strength and
// denoised with that scene's prompt (image-to-image), then shrunk back into its scene (scene.Render).
// Settle, when above 0, then noises the composed scene to that time and denoises it with its own prompt,
// so the final image is the model's drawing rather than the composite. The zero value is off.
type Detail struct {
	Strength, Settle float64
}

// Validate names what is out of range.
func (d Detail) Validate() error {
	switch {
	case math.IsNaN(d.Strength) || d.Strength < 0 || d.Strength > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "detail must be between 0 (off) and 1 (got %v)", d.Strength)
	case math.IsNaN(d.Settle) || d.Settle < 0 || d.Settle > 1:
		return cachet.Errorf(cachet.CodeInvalidArgument, "detail_settle must be between 0 (off) and 1 (got %v)", d.Settle)
	case d.Settle > 0 && d.Strength == 0:
		return cachet.Errorf(cachet.CodeInvalidArgument, "detail_settle settles a full-size redraw: give detail too")
	}
	return nil
}

// DraftSteps splits a budget of total steps an image: the draft takes the most steps D for which D, the
// redraw's ⌈Strength·D⌉ and the settling's ⌈Settle·D⌉ fit in total (at least 1), so a redrawn small scene
// costs what a plain one does. The redraws run on D-step schedules.
func (d Detail) DraftSteps(total int) int {
	for draft := total; draft > 1; draft-- {
		if draft+model.ImageToImageSteps(d.Strength, draft)+model.ImageToImageSteps(d.Settle, draft) <= total {
			return draft
		}
	}
	return 1
}

// RedrawSmall applies d to imgs, the samples of scenes drawn with base, in place. The redraws reuse base's
// seed, steps (the draft's, DraftSteps) and guidance, not its prompts, noise, step cache or injection.
// Large scenes are left as they are. sample runs a request on the model's worker. streams, when set, are
// the images' own noise streams (requests batched together): each redraw then draws from its image's
// request seed, as that request alone would.
func RedrawSmall(sample func(model.SampleRequest) (*model.SampleResult, error), base model.SampleRequest, d Detail,
	scenes []scene.Scene, imgs [][scene.CanvasPixels]uint8, streams []model.NoiseStream) error {
	if d.Strength == 0 {
		return nil
	}
	var small []int
	var prompts []string
	var init []float32
	for i, s := range scenes {
		if s.Large {
			continue
		}
		item, err := scene.Derender(&imgs[i], s)
		if err != nil {
			return err
		}
		big := scene.Canonical(s.Class)
		canvas, err := scene.Render(&item, big)
		if err != nil {
			return err
		}
		small = append(small, i)
		prompts = append(prompts, scene.Format(big))
		init = append(init, scene.ModelUnits(canvas[:])...)
	}
	if len(small) == 0 {
		return nil
	}
	redraw := func(prompts []string, init []float32, strength float64, offset int64) ([][scene.CanvasPixels]uint8, error) {
		req := model.SampleRequest{Prompts: prompts, Init: init, Strength: strength, Seed: base.Seed + offset, Steps: base.Steps,
			Guidance: base.Guidance, GuidanceRescale: base.GuidanceRescale, CleanRenorm: base.CleanRenorm, OnStep: base.OnStep}
		if streams != nil {
			own := make([]model.NoiseStream, len(small))
			for k, i := range small {
				own[k] = model.NoiseStream{Seed: streams[i].Seed + offset, Index: streams[i].Index}
			}
			req.Streams = own
		}
		res, err := sample(req)
		if err != nil {
			return nil, err
		}
		return scene.CanvasesFromModelUnits(res.Pixels)
	}
	// Seeds of their own, so a redraw's noise is not the draft's.
	bigs, err := redraw(prompts, init, d.Strength, 1_000_003)
	if err != nil {
		return err
	}
	for k, i := range small {
		item, err := scene.Derender(&bigs[k], scene.Canonical(scenes[i].Class))
		if err != nil {
			return err
		}
		if imgs[i], err = scene.Render(&item, scenes[i]); err != nil {
			return err
		}
	}
	if d.Settle == 0 {
		return nil
	}
	prompts, init = prompts[:0], init[:0]
	for _, i := range small {
		prompts = append(prompts, scene.Format(scenes[i]))
		init = append(init, scene.ModelUnits(imgs[i][:])...)
	}
	settled, err := redraw(prompts, init, d.Settle, 2_000_003)
	if err != nil {
		return err
	}
	for k, i := range small {
		imgs[i] = settled[k]
	}
	return nil
}
