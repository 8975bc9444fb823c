package cachet_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/cachetlab/cachet"
)

func TestErrorCodes(t *testing.T) {
	cause := errors.New("disk on fire")
	tests := []struct {
		name string
		err  error
		code cachet.Code
	}{
		{"plain domain error", cachet.Errorf(cachet.CodeNotFound, "subject %q not found", "s1"), cachet.CodeNotFound},
		{"wrapped by fmt", fmt.Errorf("loading: %w", cachet.Errorf(cachet.CodeInvalidArgument, "bad")), cachet.CodeInvalidArgument},
		{"domain error with cause", cachet.Wrap(cachet.CodeUnavailable, cause, "store down"), cachet.CodeUnavailable},
		{"foreign error", context.DeadlineExceeded, cachet.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cachet.CodeOf(tc.err); got != tc.code {
				t.Fatalf("CodeOf = %s, want %s", got, tc.code)
			}
			if tc.code != cachet.CodeInternal && !cachet.HasCode(tc.err, tc.code) {
				t.Fatalf("HasCode(%s) = false", tc.code)
			}
			if cachet.HasCode(tc.err, cachet.CodeConflict) {
				t.Fatal("HasCode matched a different code")
			}
		})
	}
	if err := cachet.Wrap(cachet.CodeUnavailable, cause, "store down"); !errors.Is(err, cause) {
		t.Fatal("Wrap lost its cause")
	}
}

// The service uses every core by default: libtorch's own default counts physical cores (one on a
// two-vCPU machine).
func TestDefaultConfigUsesEveryCore(t *testing.T) {
	if got, want := cachet.DefaultConfig().TorchThreads, runtime.NumCPU(); got != want {
		t.Fatalf("default torch threads %d, want %d (every core)", got, want)
	}
}
