package classifyeval

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/dataset"
)

// RobustnessRow is the accuracy of each method on perturbed copies of the test images, as uploaded and
// after images.Recenter.
type RobustnessRow struct {
	Perturbation string     `json:"perturbation"`
	Images       int        `json:"images"`
	Raw          Accuracies `json:"raw"`
	Recentred    Accuracies `json:"recentred"`
}

// Accuracies are the robustness section's three methods: the zero-shot head, TFUP with the perturbed
// images as its pool, and the default few-shot build (clean labelled shots, the perturbed images unlabelled).
type Accuracies struct {
	ZeroShot float64 `json:"zero_shot"`
	TFUP     float64 `json:"tfup"`
	Tip      float64 `json:"tip_adapter"`
}

// recenterPair is the service's configuration as uploaded (Recenter off) and recentred (on), the two
// sides of the robustness and out-of-domain sections.
func (r *Report) recenterPair(newService func(classify.Config) (*classify.Service, error)) ([2]*classify.Service, error) {
	var pair [2]*classify.Service
	for i, on := range []bool{false, true} {
		c := r.cfg.Service
		c.Recenter = on
		svc, err := newService(c)
		if err != nil {
			return pair, err
		}
		pair[i] = svc
	}
	return pair, nil
}

// robustness scores the first cfg.Robustness test images, clean and under each Perturbation, on both
// sides of the recentring pair.
func (r *Report) robustness(ctx context.Context, services [2]*classify.Service, test, train *dataset.Set, progress io.Writer) error {
	n := r.cfg.Robustness
	labels := make([]int, n)
	for i := range labels {
		labels[i] = test.Label(i)
	}
	cases := append([]Perturbation{{Name: "none (clean)", Apply: func(_ *rand.Rand, it *item) item { return *it }}}, Perturbations()...)
	for k, p := range cases {
		rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(k)))
		canvases := make([][]uint8, n)
		for i := range canvases {
			it := p.Apply(rng, test.Image(i))
			c, err := classify.ItemCanvas(&it)
			if err != nil {
				return err
			}
			canvases[i] = c
		}
		row := RobustnessRow{Perturbation: p.Name, Images: n}
		for i, svc := range services {
			fmt.Fprintf(progress, "eval classify: robustness, %s (recentred: %v)\n", p.Name, i == 1)
			acc, err := r.methodsOn(ctx, svc, train, canvases, labels)
			if err != nil {
				return err
			}
			if i == 1 {
				row.Recentred = acc
			} else {
				row.Raw = acc
			}
		}
		r.Robustness = append(r.Robustness, row)
	}
	return nil
}

// methodsOn scores the zero-shot head, the default TFUP build and the default few-shot build on canvases.
func (r *Report) methodsOn(ctx context.Context, svc *classify.Service, train *dataset.Set, canvases [][]uint8, labels []int) (Accuracies, error) {
	var acc Accuracies
	feats, err := svc.Featurizer().Canvases(ctx, canvases)
	if err != nil {
		return acc, err
	}
	_, zs, err := svc.ClassifyFeatures(ctx, "", feats, 1)
	if err != nil {
		return acc, err
	}
	acc.ZeroShot = accuracy(zs, labels)
	if acc.TFUP, err = r.tfupDefault(ctx, svc, canvases, labels, feats); err != nil {
		return acc, err
	}
	scores, err := r.drawAndClassify(ctx, svc, train, r.cfg.Seed, canvases, feats)
	if err != nil {
		return acc, err
	}
	acc.Tip = accuracy(scores, labels)
	return acc, nil
}
