package classify

import (
	"errors"
	"testing"

	"github.com/cachetlab/cachet"
)

func TestBuildSpaceDefaultsAndErrors(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name                   string
		samples, labelled      int
		method                 Method
		values                 Values
		req                    cachet.BuildRequest
		whiten, propagate, bad bool
	}{
		{name: "tfup under the pool minimum", samples: 100, method: MethodTFUP},
		{name: "tfup over a pool", samples: 300, method: MethodTFUP, whiten: true, propagate: true},
		{name: "labelled plus unlabelled", samples: 300, labelled: 16, method: MethodTip, whiten: true, propagate: true},
		{name: "all labelled", samples: 300, labelled: 300, method: MethodTip},
		{name: "solved values", samples: 300, labelled: 16, method: MethodTip, values: ValuesSolved},
		{name: "tuned", samples: 300, labelled: 16, method: MethodTip, req: cachet.BuildRequest{Tune: true}},
		{name: "whiten off", samples: 300, method: MethodTFUP, req: cachet.BuildRequest{Whiten: &off}},
		{name: "propagate off", samples: 300, method: MethodTFUP, req: cachet.BuildRequest{Propagate: &off}, whiten: true},
		{name: "over the graph bound", samples: MaxPropagateSamples + 1, method: MethodTFUP, whiten: true},
		{name: "asked over the graph bound", samples: MaxPropagateSamples + 1, method: MethodTFUP, req: cachet.BuildRequest{Propagate: &on}, bad: true},
		{name: "asked under the pool minimum", samples: 100, method: MethodTFUP, req: cachet.BuildRequest{Propagate: &on}, bad: true},
		{name: "asked without whitening", samples: 300, method: MethodTFUP, req: cachet.BuildRequest{Propagate: &on, Whiten: &off}, bad: true},
		{name: "asked with solved values", samples: 300, labelled: 16, method: MethodTip, values: ValuesSolved, req: cachet.BuildRequest{Propagate: &on}, bad: true},
		{name: "whitening under the pool minimum", samples: 100, method: MethodTFUP, req: cachet.BuildRequest{Whiten: &on}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := tc.values
			if values == "" {
				values = ValuesLabels
			}
			c := &cachet.Collection{Name: "c", Labelled: tc.labelled}
			whiten, propagate, err := buildSpace(c, tc.samples, tc.method, values, tc.req)
			if tc.bad {
				if !errors.Is(err, &cachet.Error{Code: cachet.CodeInvalidArgument}) {
					t.Fatalf("got %v, want invalid_argument", err)
				}
				return
			}
			if err != nil || whiten != tc.whiten || propagate != tc.propagate {
				t.Fatalf("whiten %v propagate %v (%v), want %v %v", whiten, propagate, err, tc.whiten, tc.propagate)
			}
		})
	}
}
