package baseeval

import (
	"context"

	"github.com/cachetlab/cachet/model"
)

// Models are what a generation evaluation runs: the denoiser and the evaluator classifier, owned by one
// worker.
type Models struct {
	W         *model.Worker
	DiT       *model.DiT
	Evaluator *model.Classifier
}

// OpenModels starts a worker and loads the denoiser weights and the evaluator on it.
func OpenModels(ctx context.Context, weights, evaluator string) (*Models, error) {
	ms := &Models{W: model.NewWorker(false)}
	err := ms.W.Do(ctx, func() error {
		var err error
		if ms.DiT, _, err = model.Load(weights, model.CPU); err != nil {
			return err
		}
		ms.Evaluator, _, err = model.LoadClassifier(evaluator, model.CPU)
		return err
	})
	if err != nil {
		ms.Close()
		return nil, err
	}
	return ms, nil
}

// Close frees the models on their worker, then stops it.
func (ms *Models) Close() {
	_ = ms.W.Do(context.Background(), func() error {
		if ms.DiT != nil {
			ms.DiT.Close()
		}
		if ms.Evaluator != nil {
			ms.Evaluator.Close()
		}
		return nil
	})
	ms.W.Close()
}
