package bench

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/eval"
)

// SoakReport is a soak's outcome. Latencies are in ms over the successful requests after warm-up.
type SoakReport struct {
	Command     string         `json:"command,omitempty"`
	URL         string         `json:"url"`
	Version     string         `json:"server_version"`
	PID         int            `json:"pid"`
	Started     time.Time      `json:"started"`
	Seconds     float64        `json:"seconds"`
	Concurrency int            `json:"concurrency"`
	Warmup      int            `json:"warmup"`
	Steps       int            `json:"steps"`
	Kinds       []SoakKind     `json:"kinds"`
	Errors      []SoakError    `json:"errors"`
	RSS         SoakRSS        `json:"rss"`
	Goroutines  SoakGoroutines `json:"goroutines"`
	Samples     []SoakSample   `json:"samples"`
	Limits      SoakLimits     `json:"limits"`
	Failures    []string       `json:"failures"`
	Passed      bool           `json:"passed"`
	errorCounts map[SoakError]int
}

// SoakKind is one request kind's counts and latency.
type SoakKind struct {
	Kind     string  `json:"kind"`
	Requests int     `json:"requests"`
	OK       int     `json:"ok"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	latency  []float64
}

// SoakError counts failed requests of one kind, status and error code, during warm-up or after. Status 0
// is a transport failure (no answer in time); code "bad_response" a 2xx answer without the images or
// predictions asked for. Only failures after warm-up count against MaxErrors: warm-up absorbs the start
// (a first classify waits for the zero-shot head).
type SoakError struct {
	Kind   string `json:"kind"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Warmup bool   `json:"warmup"`
	Count  int    `json:"count"`
}

// SoakRSS is the server's resident memory: after warm-up, at the end (both idle), and the most seen.
type SoakRSS struct {
	WarmupMiB     float64 `json:"warmup_mib"`
	EndMiB        float64 `json:"end_mib"`
	MaxMiB        float64 `json:"max_mib"`
	GrowthPercent float64 `json:"growth_percent"`
	// TrendGrowthPercent is the growth of a straight line fitted to every reading after warm-up: the Go
	// heap alone swings RSS by a tenth or more with the GC cycle, so either reading may be an outlier.
	TrendGrowthPercent float64 `json:"trend_growth_percent"`
}

// SoakGoroutines are the server's go_goroutines at the same points.
type SoakGoroutines struct {
	Warmup int `json:"warmup"`
	End    int `json:"end"`
	Max    int `json:"max"`
}

// SoakSample is one reading after Requests answered requests.
type SoakSample struct {
	Requests   int     `json:"requests"`
	Seconds    float64 `json:"seconds"`
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines int     `json:"goroutines"`
	Idle       bool    `json:"idle"` // no request in flight (after warm-up, at the end)
}

// SoakLimits are the gates the run was judged by.
type SoakLimits struct {
	MaxRSSGrowthPercent float64 `json:"max_rss_growth_percent"`
	GoroutineSlack      int     `json:"goroutine_slack"`
	MaxErrors           int     `json:"max_errors"`
}

// finish fills the summary from the warm-up and end samples and judges the run against the gates.
func (s *soaker) finish(base, end SoakSample) {
	r := s.rep
	r.Seconds = time.Since(s.start).Seconds()
	for _, name := range []string{SoakGenerate, SoakClassify} {
		k := s.kinds[name]
		if k.Requests == 0 {
			continue
		}
		if len(k.latency) > 0 {
			sort.Float64s(k.latency)
			q := func(p float64) float64 { return stat.Quantile(p, stat.Empirical, k.latency, nil) }
			k.P50, k.P95, k.P99, k.Max = q(0.5), q(0.95), q(0.99), k.latency[len(k.latency)-1]
		}
		r.Kinds = append(r.Kinds, *k)
	}
	for e, n := range r.errorCounts {
		e.Count = n
		r.Errors = append(r.Errors, e)
	}
	slices.SortFunc(r.Errors, func(a, b SoakError) int {
		return cmp.Or(-compareBool(a.Warmup, b.Warmup), strings.Compare(a.Kind, b.Kind), cmp.Compare(a.Status, b.Status), strings.Compare(a.Code, b.Code))
	})
	r.RSS = SoakRSS{WarmupMiB: base.RSSMiB, EndMiB: end.RSSMiB, GrowthPercent: 100 * (end.RSSMiB - base.RSSMiB) / base.RSSMiB}
	var xs, ys []float64
	for _, smp := range r.Samples {
		if smp.Requests >= base.Requests {
			xs, ys = append(xs, float64(smp.Requests)), append(ys, smp.RSSMiB)
		}
	}
	if alpha, beta := stat.LinearRegression(xs, ys, nil, false); xs[len(xs)-1] > xs[0] {
		from := alpha + beta*xs[0]
		r.RSS.TrendGrowthPercent = 100 * beta * (xs[len(xs)-1] - xs[0]) / from
	}
	r.Goroutines = SoakGoroutines{Warmup: base.Goroutines, End: end.Goroutines}
	for _, smp := range r.Samples {
		r.RSS.MaxMiB = math.Max(r.RSS.MaxMiB, smp.RSSMiB)
		r.Goroutines.Max = max(r.Goroutines.Max, smp.Goroutines)
	}
	r.Judge()
}

// Judge sets Failures and Passed from the summary and the limits.
func (r *SoakReport) Judge() {
	r.Failures = []string{}
	// Both measures must exceed the limit: a leak moves both, one noisy reading only one.
	if r.RSS.GrowthPercent > r.Limits.MaxRSSGrowthPercent && r.RSS.TrendGrowthPercent > r.Limits.MaxRSSGrowthPercent {
		r.Failures = append(r.Failures, fmt.Sprintf("RSS grew %.1f %% after warm-up (%.1f → %.1f MiB; %.1f %% along the fitted trend; limit %.1f %%)",
			r.RSS.GrowthPercent, r.RSS.WarmupMiB, r.RSS.EndMiB, r.RSS.TrendGrowthPercent, r.Limits.MaxRSSGrowthPercent))
	}
	if r.Goroutines.End > r.Goroutines.Warmup+r.Limits.GoroutineSlack {
		r.Failures = append(r.Failures, fmt.Sprintf("goroutines grew from %d to %d (slack %d)", r.Goroutines.Warmup, r.Goroutines.End, r.Limits.GoroutineSlack))
	}
	failed := 0
	for _, e := range r.Errors {
		if !e.Warmup {
			failed += e.Count
		}
	}
	if failed > r.Limits.MaxErrors {
		r.Failures = append(r.Failures, fmt.Sprintf("%d requests failed after warm-up (at most %d allowed)", failed, r.Limits.MaxErrors))
	}
	r.Passed = len(r.Failures) == 0
}

// Check is nil when the run passed its gates, else an error naming every gate it failed.
func (r *SoakReport) Check() error {
	if r.Passed {
		return nil
	}
	return cachet.Errorf(cachet.CodeInternal, "soak failed: %s", strings.Join(r.Failures, "; "))
}

// Tables are the report's markdown: requests and latency, memory and goroutines, errors, RSS over time.
func (r *SoakReport) Tables() []eval.Table {
	verdict := "passed"
	if !r.Passed {
		verdict = "FAILED: " + strings.Join(r.Failures, "; ")
	}
	req := eval.Table{Title: "Soak: requests and latency", Columns: []string{"kind", "requests", "ok", "failed", "p50 ms", "p95 ms", "p99 ms", "max ms"}}
	total := 0
	for _, k := range r.Kinds {
		total += k.Requests
		req.Rows = append(req.Rows, []string{k.Kind, fmt.Sprint(k.Requests), fmt.Sprint(k.OK), fmt.Sprint(k.Requests - k.OK),
			fmt.Sprintf("%.1f", k.P50), fmt.Sprintf("%.1f", k.P95), fmt.Sprintf("%.1f", k.P99), fmt.Sprintf("%.1f", k.Max)})
	}
	req.Notes = []string{
		fmt.Sprintf("%d requests against %s (version %s) in %.0f s (%.1f requests/s), %d at a time; generate: n = 1, %d steps, prompts over every scene of every class; classify: one Fashion-MNIST test image (28×28 item or 32×32 scene) zero-shot.",
			total, r.URL, r.Version, r.Seconds, float64(total)/math.Max(r.Seconds, 1e-9), r.Concurrency, r.Steps),
		fmt.Sprintf("Latency over the successful requests after the %d warm-up requests, as the client saw it (queueing for the model included).", r.Warmup),
		"Verdict: " + verdict + ".",
	}
	if r.Command != "" {
		req.Notes = append(req.Notes, "Command: `"+r.Command+"`")
	}
	mem := eval.Table{Title: "Server memory and goroutines", Columns: []string{"measure", "after warm-up", "end", "max", "growth", "limit"},
		Rows: [][]string{
			{"RSS MiB", fmt.Sprintf("%.1f", r.RSS.WarmupMiB), fmt.Sprintf("%.1f", r.RSS.EndMiB), fmt.Sprintf("%.1f", r.RSS.MaxMiB),
				fmt.Sprintf("%+.2f %% (trend %+.2f %%)", r.RSS.GrowthPercent, r.RSS.TrendGrowthPercent), fmt.Sprintf("%.1f %%", r.Limits.MaxRSSGrowthPercent)},
			{"goroutines", fmt.Sprint(r.Goroutines.Warmup), fmt.Sprint(r.Goroutines.End), fmt.Sprint(r.Goroutines.Max),
				fmt.Sprintf("%+d", r.Goroutines.End-r.Goroutines.Warmup), fmt.Sprintf("+%d", r.Limits.GoroutineSlack)},
		},
		Notes: []string{
			fmt.Sprintf("Server pid %d: VmRSS from /proc/%d/status, go_goroutines from /metrics; \"after warm-up\" and \"end\" are read with no request in flight, \"max\" over every sample.", r.PID, r.PID),
			"Trend: the growth of a straight line fitted to every RSS reading after warm-up. RSS fails the run when both it and the end-to-end growth exceed the limit.",
		},
	}
	errs := eval.Table{Title: "Failed requests", Columns: []string{"phase", "kind", "status", "code", "count"}}
	for _, e := range r.Errors {
		phase := "measured"
		if e.Warmup {
			phase = "warm-up"
		}
		errs.Rows = append(errs.Rows, []string{phase, e.Kind, fmt.Sprint(e.Status), e.Code, fmt.Sprint(e.Count)})
	}
	errs.Notes = []string{"Status 0: no answer within the timeout, or the connection failed. Failures during warm-up are shown but do not fail the run."}
	over := eval.Table{Title: "RSS over requests", Columns: []string{"requests", "seconds", "RSS MiB", "goroutines", "idle"}}
	step := max(1, len(r.Samples)/20) // about 20 rows; soak.json has every sample
	for i, smp := range r.Samples {
		if i%step != 0 && i != len(r.Samples)-1 && !smp.Idle {
			continue
		}
		idle := ""
		if smp.Idle {
			idle = "yes"
		}
		over.Rows = append(over.Rows, []string{fmt.Sprint(smp.Requests), fmt.Sprintf("%.0f", smp.Seconds),
			fmt.Sprintf("%.1f", smp.RSSMiB), fmt.Sprint(smp.Goroutines), idle})
	}
	if len(errs.Rows) == 0 {
		req.Notes = append(req.Notes, "No request failed.")
		return []eval.Table{req, mem, over}
	}
	return []eval.Table{req, mem, errs, over}
}

// Write puts soak.json and soak.md into dir.
func (r *SoakReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := eval.WriteJSON(filepath.Join(dir, SoakJSON), r); err != nil {
		return err
	}
	return eval.WriteMarkdown(filepath.Join(dir, SoakMarkdown), r.Tables()...)
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
