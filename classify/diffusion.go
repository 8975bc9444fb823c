package classify

import (
	"context"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// DiffusionTimes are the model times at which the diffusion classifier measures denoising error: a few
// spread over the schedule, as Li et al.'s "Your Diffusion Model is Secretly a Zero-Shot Classifier"
// does with many more.
var DiffusionTimes = []float64{250, 500, 750}

// DiffusionErrors is the diffusion classifier (slower zero-shot, for comparison): for each image and
// prompt, the flow model's velocity error ‖v̂(x_t, t, prompt) − (ε − x0)‖² averaged over times, with
// the same noise ε for every prompt (seeded per image and time). The prompt with the least error wins.
// Images are in model units; the result is [image][prompt].
func DiffusionErrors(ctx context.Context, w *model.Worker, dit *model.DiT, images [][]float32, prompts []string, times []float64, seed int64) ([][]float64, error) {
	if dit.Cfg.Prediction != model.PredictFlow || dit.Cfg.Cond != model.CondText {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the diffusion classifier needs a text-conditioned flow model")
	}
	if len(prompts) == 0 || len(times) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the diffusion classifier needs prompts and times")
	}
	per := dit.Cfg.Channels * dit.Cfg.ImageSize * dit.Cfg.ImageSize
	out := make([][]float64, len(images))
	for i, x0 := range images {
		if len(x0) != per {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "image %d has %d values, want %d", i, len(x0), per)
		}
		if err := ctx.Err(); err != nil {
			return nil, cachet.Wrap(cachet.CodeCanceled, err, "diffusion classifier canceled")
		}
		// One forward per image: every (time, prompt) pair is a row.
		rows := len(times) * len(prompts)
		in := model.EvalInput{X: make([]float32, 0, rows*per), T: make([]float64, 0, rows), Prompts: make([]string, 0, rows)}
		targets := make([][]float32, len(times))
		for k, t := range times {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(i*len(times)+k)))
			s := t / 1000
			xt := make([]float32, per)
			targets[k] = make([]float32, per)
			for p := range per {
				eps := float32(rng.NormFloat64())
				xt[p] = float32(1-s)*x0[p] + float32(s)*eps
				targets[k][p] = eps - x0[p]
			}
			for _, pr := range prompts {
				in.X = append(in.X, xt...)
				in.T = append(in.T, t)
				in.Prompts = append(in.Prompts, pr)
			}
		}
		var v []float32
		if err := w.Do(ctx, func() error {
			var err error
			v, err = dit.Evaluate(in, nil)
			return err
		}); err != nil {
			return nil, err
		}
		out[i] = make([]float64, len(prompts))
		for k := range times {
			for c := range prompts {
				row := v[(k*len(prompts)+c)*per : (k*len(prompts)+c+1)*per]
				e := 0.0
				for p, x := range row {
					d := float64(x - targets[k][p])
					e += d * d
				}
				out[i][c] += e / float64(per*len(times))
			}
		}
	}
	return out, nil
}

// DiffusionRerankWeight weighs DiffusionLogits against a cache model's logits when both are summed. The
// diffusion classifier errs on other images than the features do: on 1,000 held-out training items, 16
// labels per class propagated (five draws), 40 lifted 79.9 to 80.4 % with errors over nine times (10–160
// gave +0.1 to +0.5).
const DiffusionRerankWeight = 40.0

// DiffusionRerankWeightZeroShot is DiffusionRerankWeight for the built-in head's zero-shot logits, which
// spread wider (82 between an image's best and worst class, on average): on the same 1,000 held-out items
// the built-in head alone is 71.0 %, the diffusion classifier alone 74.9 %, their sum at weight 40 74.1 %,
// at 120–640 75.5–75.9 %.
const DiffusionRerankWeightZeroShot = 120.0

// WithDiffusion is s with weight × DiffusionLogits(errs) as its Diffusion part, added to its logits (s's
// own slices are left as they are). The service's rerank and the eval's combined rows both score this way.
func (s Scores) WithDiffusion(errs []float64, weight float64) Scores {
	d := DiffusionLogits(errs)
	logits := make([]float64, len(s.Logits))
	for c := range d {
		d[c] *= weight
		logits[c] = s.Logits[c] + d[c]
	}
	s.Diffusion, s.Logits = d, logits
	return s
}

// DiffusionLogits turns one image's denoising errors, one per prompt, into logits: the negated errors,
// z-scored over the prompts so that their scale does not depend on the image. Equal errors give zeros.
func DiffusionLogits(errs []float64) []float64 {
	out := make([]float64, len(errs))
	if len(errs) == 0 {
		return out
	}
	mean, sd := stat.MeanStdDev(errs, nil)
	if !(sd > 0) {
		return out
	}
	for c, e := range errs {
		out[c] = -(e - mean) / sd
	}
	return out
}
