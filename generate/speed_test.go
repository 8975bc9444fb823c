package generate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/stepcache"
)

// A speed preset picks the steps and the policy of the model's calibration file; the default preset
// applies to a request naming none of speed, steps and cache; naming both, an unknown preset or one the
// model has not measured is refused with what to do.
func TestSpeedPresets(t *testing.T) {
	s := generatetest.New(t)
	cals := stepcache.Calibrations{Speeds: map[string]stepcache.SpeedPoint{
		"balanced": {Steps: 5, Cache: "none"},
		"fast":     {Steps: 4, Cache: "cfgcache:interval=2"},
	}}
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, Calibrations: cals})
	bare := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID})
	tests := []struct {
		name      string
		svc       *generate.Service
		req       generate.Request
		speed     string
		steps     int
		policy    string
		wantError string
	}{
		{"named", svc, generate.Request{Speed: "Fast"}, "fast", 4, "cfgcache", ""},
		{"the default", svc, generate.Request{}, "balanced", 5, "none", ""},
		{"steps instead", svc, generate.Request{Steps: 3}, "", 3, "none", ""},
		{"a policy instead", svc, generate.Request{Cache: stepcache.Config{Name: "fora"}}, "", cachet.DefaultSteps, "fora", ""},
		{"no presets measured: the default steps", bare, generate.Request{}, "", cachet.DefaultSteps, "none", ""},
		{"unknown", svc, generate.Request{Speed: "ludicrous"}, "", 0, "", `speed must be one of exact, balanced, fast, fastest (got "ludicrous")`},
		{"with steps", svc, generate.Request{Speed: "fast", Steps: 8}, "", 0, "", "give speed, or steps and cache, not both"},
		{"with a policy", svc, generate.Request{Speed: "fast", Cache: stepcache.Config{Name: "fora"}}, "", 0, "", "not both"},
		{"not measured on this model", svc, generate.Request{Speed: "exact"}, "", 0, "", "no measured speed presets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Prompt, req.N, req.Guidance = "a large coat", 1, 2
			res, err := tc.svc.Generate(context.Background(), req)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) || cachet.CodeOf(err) != cachet.CodeInvalidArgument {
					t.Fatalf("error %v, want invalid_argument %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Speed != tc.speed || len(res.StepTimes) != tc.steps || res.Cache.Policy != tc.policy {
				t.Errorf("speed %q, %d steps, policy %q; want %q, %d, %q", res.Speed, len(res.StepTimes), res.Cache.Policy, tc.speed, tc.steps, tc.policy)
			}
		})
	}
	// Through the endpoint, as the API and the job workers run it: the request is validated, then generated
	// (validated again, already resolved).
	e := generate.NewEndpoint(svc, nil, nil, nil)
	for _, speed := range []string{"", "fast"} {
		res, err := e.Generate(context.Background(), cachet.GenerateRequest{Prompt: "a large coat", N: 1, Speed: speed})
		want := map[string]string{"": "balanced", "fast": "fast"}[speed]
		if err != nil {
			t.Errorf("endpoint, speed %q: %v", speed, err)
		} else if res.Speed != want {
			t.Errorf("endpoint, speed %q: answered speed %q, want %q", speed, res.Speed, want)
		}
	}
	presets := generate.SpeedPresets(cals.Speeds)
	if len(presets) != 2 || presets[0].Name != "balanced" || presets[1].Name != "fast" || presets[1].Cache.Name != "cfgcache" {
		t.Errorf("catalog presets %+v: want balanced then fast (cfgcache)", presets)
	}
}
