package model

import (
	"context"
	"fmt"
	"runtime"

	"github.com/cachetlab/cachet"
)

// Worker runs model work serially on one goroutine locked to its OS thread: libtorch's grad mode is per
// OS thread, and sharing a model between goroutines is unsafe in gotch. Inference runs with gradients off.
type Worker struct {
	jobs chan job
	done chan struct{}
}

type job struct {
	fn  func() error
	out chan error
}

// NewWorker starts a worker. grad says whether gradients stay on (training) or off (inference).
func NewWorker(grad bool) *Worker {
	w := &Worker{jobs: make(chan job), done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		flushDenormals()
		_, _ = setGradEnabled(grad)
		close(started)
		defer close(w.done)
		for j := range w.jobs {
			runJob(j)
		}
	}()
	<-started
	return w
}

// Do runs fn on the worker and waits for it. If ctx ends while fn waits for its turn, Do gives up; a
// running fn is expected to watch ctx itself (the sampler checks it between steps).
func (w *Worker) Do(ctx context.Context, fn func() error) error {
	j := job{fn: fn, out: make(chan error, 1)}
	select {
	case w.jobs <- j:
	case <-ctx.Done():
		return cachet.Wrap(cachet.CodeCanceled, ctx.Err(), "canceled while waiting for the model")
	}
	return <-j.out
}

// Close stops the worker after the running job.
func (w *Worker) Close() {
	close(w.jobs)
	<-w.done
}

// runJob runs one job and always answers it: a panic becomes an error (a bug in one request must not take
// the server down), and a job that ends its goroutine (runtime.Goexit, e.g. t.Fatal in a test) is reported
// instead of leaving Do waiting forever.
func runJob(j job) {
	answered := false
	defer func() {
		if r := recover(); r != nil {
			j.out <- fmt.Errorf("model: worker job panicked: %v", r)
			return
		}
		if !answered {
			j.out <- fmt.Errorf("model: worker job ended its goroutine without returning")
		}
	}()
	err := j.fn()
	answered = true
	j.out <- err
}

// LoadOn loads denoiser weights on worker w and returns the model with its release, which closes it on w:
// a model lives and dies on its worker's thread.
func LoadOn(ctx context.Context, w *Worker, path string) (*DiT, func(), error) {
	var m *DiT
	if err := w.Do(ctx, func() error {
		var err error
		m, _, err = Load(path, CPU)
		return err
	}); err != nil {
		return nil, nil, err
	}
	return m, func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) }, nil
}
