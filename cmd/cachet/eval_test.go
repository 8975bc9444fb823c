package main

import (
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
)

// eval base refuses bad --guidance-interval and --classes values at the edge, before loading any model.
func TestEvalBaseRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--guidance-interval", "0.5"}, "two numbers"},
		{[]string{"--guidance-interval", "0.8,0.2"}, "0 ≤ lo < hi ≤ 1"},
		{[]string{"--guidance-interval", "0,1.5"}, "0 ≤ lo < hi ≤ 1"},
		{[]string{"--classes", "pullover,jumper"}, `"jumper" is not a class`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := run(t, append([]string{"eval", "base", "--out", t.TempDir()}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if cachet.CodeOf(err) != cachet.CodeInvalidArgument {
				t.Errorf("code %v, want %v", cachet.CodeOf(err), cachet.CodeInvalidArgument)
			}
		})
	}
}
