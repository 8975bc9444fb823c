package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/stepcache"
)

// LoadStepCacheServiceReport reads a service-path report (its JSON file).
func LoadStepCacheServiceReport(path string) (*StepCacheServiceReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeNotFound, err, "reading the step-cache report %s", path)
	}
	var r StepCacheServiceReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a step-cache report: %v", path, err)
	}
	if len(r.Groups) == 0 || r.Steps < 1 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a service-path step-cache report (no groups); run `cachet bench stepcache` (service path)", path)
	}
	return &r, nil
}

// SpeedPresets are the speed presets this run measured: for each, the setting Recommend picks at its
// PSNR floor (the fastest keeping it in every group and not beaten by fewer steps), with the lowest PSNR
// and speed-up over the groups. report names the report in each point.
func (r *StepCacheServiceReport) SpeedPresets(report string) map[string]stepcache.SpeedPoint {
	out := map[string]stepcache.SpeedPoint{}
	for _, p := range cachet.SpeedPresets {
		rec := r.Recommend(p.MinPSNR)
		if len(rec.PSNR) == 0 {
			continue
		}
		psnr, speed := math.Inf(1), math.Inf(1)
		for i := range rec.PSNR {
			psnr, speed = min(psnr, rec.PSNR[i]), min(speed, rec.SpeedUp[i])
		}
		cache := rec.Setting.Cache
		if strings.TrimSpace(cache.Name) == "" {
			cache.Name = "none"
		}
		out[p.Name] = stepcache.SpeedPoint{Steps: rec.Setting.StepsOr(r.Steps), Cache: cache.String(), PSNR: math.Round(psnr*10) / 10,
			SpeedUp: math.Round(speed*100) / 100, Report: report}
	}
	return out
}

// speedTable is the speed presets this run measured, as `cachet calibrate speeds` writes them.
func (r *StepCacheServiceReport) speedTable() eval.Table {
	points := r.SpeedPresets("")
	t := eval.Table{Title: "Speed presets measured here",
		Columns: []string{"speed", "PSNR floor", "steps", "cache", "PSNR dB (lowest group)", "speed-up (lowest group)"},
		Notes: []string{"Each preset is the fastest setting keeping its floor in every group and not beaten by fewer steps at its speed-up " +
			"(the uncached reference when none qualifies). `cachet calibrate speeds --report <this run's stepcache.json>` writes them next to the weights."}}
	for _, p := range cachet.SpeedPresets {
		if pt, ok := points[p.Name]; ok {
			t.Rows = append(t.Rows, []string{p.Name, fmt.Sprintf("%g dB", p.MinPSNR), fmt.Sprint(pt.Steps), pt.Cache,
				fmt.Sprintf("%.1f", pt.PSNR), fmt.Sprintf("%.2f×", pt.SpeedUp)})
		}
	}
	return t
}
