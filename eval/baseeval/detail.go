package baseeval

import (
	"context"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
)

// detailSmall redraws each small scene's item at full size: the item is cut out of the generated canvas
// (dataset.Derender), drawn as the class's canonical large scene, noised to strength and denoised with
// that scene's prompt (image-to-image), then shrunk back into the small scene (dataset.Render). Large
// scenes are returned as they are.
func detailSmall(ctx context.Context, w *model.Worker, m *model.DiT, base model.SampleRequest, strength, settle float64,
	scenes []dataset.Scene, imgs [][dataset.CanvasPixels]uint8) error {
	var idx []int
	req := base
	req.Prompts, req.NegativePrompts, req.Noise, req.Init, req.Strength = nil, nil, nil, nil, strength
	req.NegativeGuidance = 0
	req.Seed = base.Seed + 1_000_003
	for i, s := range scenes {
		if s.Large {
			continue
		}
		item, err := dataset.Derender(&imgs[i], s)
		if err != nil {
			return err
		}
		big := dataset.Canonical(s.Class)
		canvas, err := dataset.Render(&item, big)
		if err != nil {
			return err
		}
		idx = append(idx, i)
		req.Prompts = append(req.Prompts, dataset.Format(big))
		req.Init = append(req.Init, dataset.ModelUnits(canvas[:])...)
	}
	if len(idx) == 0 {
		return nil
	}
	var res *model.SampleResult
	if err := w.Do(ctx, func() error {
		var err error
		res, err = m.Sample(ctx, req)
		return err
	}); err != nil {
		return err
	}
	per := dataset.CanvasPixels
	for k, i := range idx {
		big, err := dataset.FromModelUnits(res.Pixels[k*per : (k+1)*per])
		if err != nil {
			return err
		}
		item, err := dataset.Derender(&big, dataset.Canonical(scenes[i].Class))
		if err != nil {
			return err
		}
		if imgs[i], err = dataset.Render(&item, scenes[i]); err != nil {
			return err
		}
	}
	if settle <= 0 {
		return nil
	}
	// settle: the composed small scene, noised a little and denoised with its own prompt, so the final
	// image is the model's.
	req2 := base
	req2.Prompts, req2.NegativePrompts, req2.Noise, req2.Init, req2.Strength = nil, nil, nil, nil, settle
	req2.NegativeGuidance = 0
	req2.Seed = base.Seed + 2_000_003
	for _, i := range idx {
		req2.Prompts = append(req2.Prompts, dataset.Format(scenes[i]))
		req2.Init = append(req2.Init, dataset.ModelUnits(imgs[i][:])...)
	}
	if err := w.Do(ctx, func() error {
		var err error
		res, err = m.Sample(ctx, req2)
		return err
	}); err != nil {
		return err
	}
	for k, i := range idx {
		var err error
		if imgs[i], err = dataset.FromModelUnits(res.Pixels[k*per : (k+1)*per]); err != nil {
			return err
		}
	}
	return nil
}
