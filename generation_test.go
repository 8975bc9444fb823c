package cachet_test

import (
	"testing"

	"github.com/cachetlab/cachet"
)

func TestGenerateRequestSamplingDefaults(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name                     string
		req                      cachet.GenerateRequest
		wantGuidance, wantRenorm float64
	}{
		{"text-to-image, nothing named", cachet.GenerateRequest{Prompt: "a large bag"}, cachet.DefaultGuidance, cachet.DefaultCleanRenorm},
		{"with a subject, nothing named", cachet.GenerateRequest{Prompt: "a large bag", SubjectID: "s"}, cachet.DefaultSubjectGuidance, cachet.DefaultCleanRenorm},
		{"guidance named", cachet.GenerateRequest{Guidance: f(2)}, 2, cachet.DefaultCleanRenorm},
		{"renorm 0 turns it off", cachet.GenerateRequest{CleanRenorm: f(0)}, cachet.DefaultGuidance, 0},
		{"both named with a subject", cachet.GenerateRequest{SubjectID: "s", Guidance: f(7), CleanRenorm: f(0.5)}, 7, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, r := tc.req.Sampling()
			if g != tc.wantGuidance || r != tc.wantRenorm {
				t.Errorf("Sampling() = %g, %g; want %g, %g", g, r, tc.wantGuidance, tc.wantRenorm)
			}
		})
	}
}
