package bench

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// Setting is one configuration `cachet bench stepcache` measures: a cache policy at the reference's steps
// (Steps 0), the baseline every policy must beat — plain sampling with fewer steps (Steps > 0, no policy) —
// or a policy composed with fewer steps (both).
type Setting struct {
	Cache stepcache.Config `json:"cache"`
	Steps int              `json:"steps,omitempty"`
}

// policyName is the setting's policy, "none" when it names none.
func (s Setting) policyName() string {
	name := strings.ToLower(strings.TrimSpace(s.Cache.Name))
	if name == "" {
		return "none"
	}
	return name
}

// Baseline reports whether s is plain sampling with fewer steps.
func (s Setting) Baseline() bool { return s.Steps > 0 && s.policyName() == "none" }

// StepsOr is the setting's step count, ref when it keeps the reference's.
func (s Setting) StepsOr(ref int) int {
	if s.Steps > 0 {
		return s.Steps
	}
	return ref
}

// Label names the setting in tables and plots: "taylorseer interval=4 order=2", "24 steps",
// "teacache, 20 steps".
func (s Setting) Label() string {
	if s.Baseline() {
		return fmt.Sprintf("%d steps", s.Steps)
	}
	parts := []string{s.policyName()}
	keys := make([]string, 0, len(s.Cache.Params))
	for k := range s.Cache.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%g", k, s.Cache.Params[k]))
	}
	label := strings.Join(parts, " ")
	if s.Steps > 0 {
		label += fmt.Sprintf(", %d steps", s.Steps)
	}
	return label
}

// ParseSettings reads settings separated by ';': "fora:interval=3", "taylorseer:interval=4,order=2",
// "steps=25" (the fewer-steps baseline), "teacache@20" (a policy at 20 steps). Every policy config is
// validated.
func ParseSettings(s string) ([]Setting, error) {
	var out []Setting
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if v, ok := strings.CutPrefix(item, "steps="); ok {
			n, err := parseSteps(item, v)
			if err != nil {
				return nil, err
			}
			out = append(out, Setting{Steps: n})
			continue
		}
		spec, at, composed := strings.Cut(item, "@")
		c, err := stepcache.ParseConfig(spec)
		if err != nil {
			return nil, err
		}
		st := Setting{Cache: c}
		if composed {
			if st.Steps, err = parseSteps(item, at); err != nil {
				return nil, err
			}
		}
		if st.Baseline() { // "none@20" is the 20-step baseline
			st.Cache = stepcache.Config{}
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "no settings given; e.g. \"fora:interval=3;steps=25;teacache@20\"")
	}
	return out, nil
}

func parseSteps(item, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > model.MaxSteps {
		return 0, cachet.Errorf(cachet.CodeInvalidArgument, "setting %q: steps must be an integer in 1…%d", item, model.MaxSteps)
	}
	return n, nil
}

// DefaultSettings spans each policy from gentle to aggressive, with the fewer-steps baselines at the
// matching compute fractions. MagCache and TeaCache need the model's calibration file.
const DefaultSettings = "steps=25;steps=17;steps=13;steps=10;steps=8;" +
	"fora:interval=2;fora:interval=3;fora:interval=4;" +
	"taylorseer:interval=3,order=2;taylorseer:interval=4,order=2;taylorseer:interval=5,order=2;taylorseer:interval=4,order=4;" +
	"foca:interval=3;foca:interval=4;foca:interval=5;foca:interval=6;" +
	"fbcache:threshold=0.05;fbcache:threshold=0.1;dbcache;dbcache:threshold=0.15;" +
	"abcache:order=2;abcache:order=3;bwcache:delta=0.15;bwcache:delta=0.25;" +
	"magcache;magcache:threshold=0.12;teacache;teacache:threshold=0.6"
