package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// stepCacheTiming is the timing-only run on a random-weight preset: compute fractions from one request per
// setting, then the interleaved timing rounds.
func stepCacheTiming(ctx context.Context, o StepCacheOptions, began time.Time) (*StepCacheReport, error) {
	cfg, err := PresetConfig(o.Preset)
	if err != nil {
		return nil, err
	}
	r := &stepCacheRun{o: o, progress: o.Progress, scenes: SpreadPrompts(o.TimingImages), cals: stepcache.Calibrations{}}
	if r.progress == nil {
		r.progress = io.Discard
	}
	for _, steps := range append([]int{o.Steps}, settingSteps(o.Settings)...) {
		if err := cfg.ValidateSteps(steps); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Preset, err)
		}
	}
	for _, s := range o.Settings {
		if !s.Baseline() {
			if _, err := stepcache.New(s.Cache, cfg.Depth); err != nil {
				return nil, fmt.Errorf("%s: %w (calibrated policies cannot run on random weights)", s.Label(), err)
			}
		}
	}
	r.w = model.NewWorker(false)
	defer r.w.Close()
	defer r.w.Do(context.Background(), func() error {
		if r.m != nil {
			r.m.Close()
		}
		return nil
	})
	if err := r.w.Do(ctx, func() error {
		if err := model.SetSeed(o.Seed); err != nil {
			return err
		}
		var err error
		if r.m, err = model.New(cfg, model.CPU); err != nil {
			return err
		}
		return r.m.Randomize(0.02)
	}); err != nil {
		return nil, err
	}
	all := append([]Setting{{Cache: stepcache.Config{Name: "none"}}}, o.Settings...)
	rows := make([]StepCacheRow, len(all))
	for i, s := range all {
		fmt.Fprintf(r.progress, "bench stepcache: compute %d/%d: %s\n", i+1, len(all), s.Label())
		_, st, err := r.sample(ctx, s, 0, len(r.scenes))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Label(), err)
		}
		rows[i] = StepCacheRow{Label: s.Label(), Setting: s, ComputeFraction: st.ComputeFraction, Computed: st.Computed,
			Reused: st.Reused, Forecast: st.Forecast, ExtraMiB: float64(st.ExtraBytes) / (1 << 20)}
		if s.Baseline() {
			rows[i].ComputeFraction = 1
		}
		rows[i].ComputeFraction *= float64(s.StepsOr(o.Steps)) / float64(o.Steps)
	}
	if err := r.timing(ctx, all, rows); err != nil {
		return nil, err
	}
	return &StepCacheReport{Preset: o.Preset, Model: r.m.Cfg.String(), Steps: o.Steps, Guidance: o.Guidance,
		TimingImages: len(r.scenes), Repeats: o.Repeats, Threads: o.Threads, Reference: rows[0], Rows: rows[1:],
		Seconds: time.Since(began).Seconds()}, nil
}

// settingSteps lists the step counts of the settings that take fewer steps.
func settingSteps(settings []Setting) []int {
	var out []int
	for _, s := range settings {
		if s.Steps > 0 {
			out = append(out, s.Steps)
		}
	}
	return out
}
