package main

import (
	"strings"
	"testing"
)

// Libraries name the config field an error is about; the CLI names the flag the user typed.
func TestFieldErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "evaluator", "--epochs", "0"}, "--epochs: must be at least 1"},
		{[]string{"train", "evaluator", "--derender", "2"}, "--derender: must be a probability"},
		{[]string{"train", "adapters", "--ema", "1"}, "--ema: must be in [0, 1)"},
		{[]string{"train", "adapters", "--ref-views", "9"}, "--ref-views: must be 1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(tc.args)
			cmd, err := root.ExecuteC()
			if err == nil {
				t.Fatal("no error")
			}
			if got := oneLine(flagError(cmd, err)); !strings.Contains(got, tc.want) {
				t.Errorf("%q; want it to contain %q", got, tc.want)
			}
		})
	}
}
