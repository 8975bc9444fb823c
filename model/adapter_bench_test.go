package model_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/train"
)

// BenchmarkAdapterOverhead samples the default model's architecture (random weights: timing only) with and
// without the default adapters, interleaved, and reports both times and the overhead (the target:
// ≤ 25 %) for references of 1, 2 and 6 views at the API's usual request shape (4 images sharing one subject,
// guidance: 8 rows) and, for 2 and 6 views, the personalization eval's (40 images, each its own subject),
// at 50 steps. The adapted time includes making the request's references from the decoded cache (upload and
// key/value projection), as a request does:
//
//	OMP_NUM_THREADS=1 scripts/in-env.sh go test -run '^$' -bench AdapterOverhead -benchtime 3x ./model/
func BenchmarkAdapterOverhead(b *testing.B) {
	for _, tc := range []struct {
		views, images int
		perRow        bool
	}{{1, 4, false}, {2, 4, false}, {6, 4, false}, {2, 40, true}, {6, 40, true}} {
		b.Run(fmt.Sprintf("views=%d/images=%d", tc.views, tc.images), func(b *testing.B) {
			benchAdapterOverhead(b, tc.views, tc.images, tc.perRow)
		})
	}
}

func benchAdapterOverhead(b *testing.B, views, images int, perRow bool) {
	w := model.NewWorker(false)
	defer w.Close()
	var (
		base   *model.DiT
		a      *model.Adapters
		data   [][]float32
		rows   int
		tokens int
	)
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(1); err != nil {
			return err
		}
		var err error
		if base, err = model.New(train.BaseModelConfig(), model.CPU); err != nil {
			return err
		}
		if err := base.Randomize(0.02); err != nil {
			return err
		}
		cfg := train.DefaultAdapterConfig()
		if views > 1 {
			cfg.Views = views
		}
		if a, err = model.NewAdapters(base.Cfg, cfg, model.CPU); err != nil {
			return err
		}
		if err := a.Randomize(0.02); err != nil {
			return err
		}
		rows = 1
		if perRow {
			rows = images
		}
		tokens = views * base.Cfg.Tokens()
		data = randomTokens(len(a.Cfg.Blocks), rows*tokens*base.Cfg.Width, 1)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Do(context.Background(), func() error { a.Close(); base.Close(); return nil })
	prompt := scene.Format(scene.Scene{Class: 7, Position: scene.Left})
	req := model.SampleRequest{Prompts: slices.Repeat([]string{prompt}, images), Seed: 1, Steps: 50, Guidance: 4}
	run := func(adapted bool) time.Duration {
		t0 := time.Now()
		if err := w.Do(context.Background(), func() error {
			r := req
			if adapted {
				ref, err := a.NewRowReferences(a.Cfg.Blocks, rows, tokens, data)
				if err != nil {
					return err
				}
				defer ref.Close()
				r.Inject = ref.Injection(model.GuideReference)
			}
			_, err := base.Sample(context.Background(), r)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	// Interleaved, so that load from other processes hits both alike.
	var tp, ta time.Duration
	for b.Loop() {
		tp += run(false)
		ta += run(true)
	}
	b.ReportMetric(float64(tp.Milliseconds())/float64(b.N), "plain-ms")
	b.ReportMetric(float64(ta.Milliseconds())/float64(b.N), "adapted-ms")
	b.ReportMetric(100*(ta.Seconds()/tp.Seconds()-1), "overhead-%")
}
