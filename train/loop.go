package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/cachetlab/cachet"
)

// Schedule is the learning-rate schedule every training job uses: linear warm-up, then cosine decay to
// MinLRFrac·LR at Steps.
type Schedule struct {
	LR, MinLRFrac float64
	Warmup, Steps int
}

// At is the learning rate at step.
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.LR * float64(step+1) / float64(s.Warmup)
	}
	p := float64(step-s.Warmup) / math.Max(1, float64(s.Steps-s.Warmup))
	return s.LR * (s.MinLRFrac + (1-s.MinLRFrac)*0.5*(1+math.Cos(math.Pi*math.Min(p, 1))))
}

// job is what the shared loop needs of one training job. step and checkpoint run the model work (on the
// job's worker); the loop owns the bookkeeping: resume, time box, interruption, progress bar, CSV log,
// periodic checkpoints.
type job struct {
	Common
	Name string // "base", "adapters": for messages
	// load restores the checkpoint (os.ErrNotExist when there is none) and returns its metadata.
	load func() (map[string]string, error)
	// step runs optimizer step k with learning rate lr and returns the batch loss.
	step func(k int, lr float64) (float64, error)
	// save writes the checkpoint with meta at step k and returns the validation loss.
	save func(k int, meta map[string]string) (float64, error)
}

// run trains from the checkpoint (with Resume) or from scratch up to Steps, and returns the metadata to
// record with the final weights.
func (j job) run(ctx context.Context) (map[string]string, error) {
	progress := j.Progress
	if progress == nil {
		progress = io.Discard
	}
	start, elapsedBefore := 0, time.Duration(0)
	lossEMA := math.NaN() // the progress bar's and the log's smoothed loss, carried across a resume
	if j.Resume {
		meta, err := j.load()
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(progress, "no checkpoint at %s: starting from scratch\n", j.Checkpoint)
		case err != nil:
			return nil, err
		default:
			start, _ = strconv.Atoi(meta["train.step"])
			secs, _ := strconv.ParseFloat(meta["train.wall_seconds"], 64)
			elapsedBefore = time.Duration(secs * float64(time.Second))
			if v, err := strconv.ParseFloat(meta["train.loss_ema"], 64); err == nil {
				lossEMA = v
			}
			fmt.Fprintf(progress, "resumed from %s at step %d (%s of training so far)\n", j.Checkpoint, start, elapsedBefore.Round(time.Second))
		}
	}
	log, err := openCSV(j.LogCSV, start > 0)
	if err != nil {
		return nil, err
	}
	defer log.close()

	bar := newBar(progress, j.Steps, start)
	began := time.Now()
	lastCkpt := time.Now()
	meta := func(step int, elapsed time.Duration) map[string]string {
		m := map[string]string{
			"train.step":         strconv.Itoa(step),
			"train.wall_seconds": strconv.FormatFloat(elapsed.Seconds(), 'f', 1, 64),
			"train.command":      j.Command,
			"train.seed":         strconv.FormatUint(j.Seed, 10),
		}
		if !math.IsNaN(lossEMA) {
			m["train.loss_ema"] = strconv.FormatFloat(lossEMA, 'g', -1, 64)
		}
		return m
	}
	// The checkpoint and its log row record the same training time (before validation runs), so a
	// resumed log goes on from where the row left it.
	checkpoint := func(step int) error {
		elapsed := elapsedBefore + time.Since(began)
		vl, err := j.save(step, meta(step, elapsed))
		if err != nil {
			return err
		}
		lastCkpt = time.Now()
		return log.write(step, math.NaN(), lossEMA, j.LRAt(step), vl, elapsed)
	}
	for step := start; step < j.Steps; step++ {
		if (j.MaxTime > 0 && time.Since(began) >= j.MaxTime) || (j.stopAtStep > 0 && step == j.stopAtStep) {
			fmt.Fprintf(progress, "\ntime box reached: checkpointed step %d; continue with --resume\n", step)
			return nil, checkpoint(step)
		}
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(progress, "\ninterrupted: checkpointing step %d\n", step)
			return nil, errors.Join(checkpoint(step), cachet.Wrap(cachet.CodeCanceled, err, "%s training interrupted at step %d; continue with --resume", j.Name, step))
		}
		loss, err := j.step(step, j.LRAt(step))
		if err != nil {
			return nil, fmt.Errorf("train: step %d: %w", step, err)
		}
		if math.IsNaN(lossEMA) {
			lossEMA = loss
		}
		lossEMA = 0.98*lossEMA + 0.02*loss
		bar.update(step+1, lossEMA, j.Batch)
		if step%10 == 0 {
			if err := log.write(step, loss, lossEMA, j.LRAt(step), math.NaN(), elapsedBefore+time.Since(began)); err != nil {
				return nil, err
			}
		}
		if time.Since(lastCkpt) >= j.CheckpointEvery {
			if err := checkpoint(step + 1); err != nil {
				return nil, err
			}
		}
	}
	if err := checkpoint(j.Steps); err != nil {
		return nil, err
	}
	return meta(j.Steps, elapsedBefore+time.Since(began)), nil
}
