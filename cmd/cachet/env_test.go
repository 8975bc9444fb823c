package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestApplyEnv(t *testing.T) {
	t.Setenv("CACHET_CACHE", "/var/cache/cachet") // provisioning's own variable, set by make
	t.Setenv("CACHET_STEPS", "12")
	t.Setenv("CACHET_GUIDANCE", "3.5")
	tests := []struct {
		flag, cmdline, want string
	}{
		{"cache", "", "none"},             // CACHET_CACHE is provisioning's, not --cache's
		{"steps", "", "12"},               // from the environment
		{"guidance", "--guidance=2", "2"}, // the command line wins
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			fs.String("cache", "none", "")
			fs.Int("steps", 50, "")
			fs.Float64("guidance", 4, "")
			var args []string
			if tc.cmdline != "" {
				args = append(args, tc.cmdline)
			}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(fs); err != nil {
				t.Fatal(err)
			}
			if got := fs.Lookup(tc.flag).Value.String(); got != tc.want {
				t.Errorf("--%s = %q, want %q", tc.flag, got, tc.want)
			}
		})
	}
	t.Setenv("CACHET_STEPS", "many")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.Int("steps", 50, "")
	if err := applyEnv(fs); err == nil {
		t.Error("a non-numeric CACHET_STEPS was accepted")
	}
}
