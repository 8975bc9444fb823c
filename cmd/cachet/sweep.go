package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/subjects"
)

// sweepEvery repairs what crashes and outages left behind (subjects.Service.Sweep, orphaned generated
// images) at start and then every interval, until ctx ends. A sweep that fails (a service is down) is
// logged and tried again at the next tick.
func sweepEvery(ctx context.Context, interval, orphanAfter time.Duration, subs *subjects.Service, gen *generate.Endpoint) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := subs.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			slog.Warn("sweep: subjects", "err", err)
		} else if res.Failed > 0 || res.OrphanSubjects > 0 {
			slog.Info("sweep: subjects", "stale_builds_failed", res.Failed, "orphan_subjects_removed", res.OrphanSubjects)
		}
		if gen != nil {
			n, err := gen.SweepOrphans(ctx, orphanAfter)
			if err != nil && ctx.Err() == nil {
				slog.Warn("sweep: generated images", "err", err)
			} else if n > 0 {
				slog.Info("sweep: generated images", "orphans_removed", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
