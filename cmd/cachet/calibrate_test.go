package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/stepcache"
)

// The profiled policies as a user runs them: calibrate next to the weights, then generate with each.
func TestCalibrateThenGenerateWithProfiledPolicies(t *testing.T) {
	dir := t.TempDir()
	weights := filepath.Join(dir, "base.safetensors")
	generatetest.New(t).SaveWeights(t, weights)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"calibrate", "hyca", "--steps", "6", "--runs", "2", "--batch", "1"}, "hyca: channels per solver:"},
		{[]string{"calibrate", "bac", "--steps", "5", "--runs", "1", "--batch", "1"}, "bac: similarities over 5 steps"},
		{[]string{"calibrate", "ertacache", "--steps", "4", "--runs", "2", "--batch", "1"}, "of 4 steps reuse"},
		{[]string{"calibrate", "ertacache", "--steps", "6", "--runs", "2", "--batch", "1"}, "of 6 steps reuse"},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			out, err := run(t, append(tc.args, "--weights", weights)...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
	cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(weights))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"hyca", "bac", "ertacache"} {
		if len(cals.Profiles[p]) == 0 {
			t.Errorf("no %s profile in %v", p, cals.Profiles)
		}
	}
	for _, policy := range []string{"hyca", "bac", "ertacache", "asymrnr"} {
		t.Run("generate with "+policy, func(t *testing.T) {
			out, err := run(t, "generate", "--weights", weights, "--prompt", "a large bag", "--n", "1", "--steps", "5",
				"--cache", policy, "--out", filepath.Join(dir, policy+".png"))
			if err != nil || !strings.Contains(out, "cache "+policy) {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
	for _, bad := range [][]string{
		{"calibrate", "hyca", "--clusters", "0"},
		{"calibrate", "ertacache", "--threshold", "0"},
		{"calibrate", "bac", "--batch", "0"},
	} {
		if _, err := run(t, append(bad, "--weights", weights)...); cachet.CodeOf(err) != cachet.CodeInvalidArgument {
			t.Errorf("%v: %v, want invalid_argument", bad, err)
		}
	}
}
