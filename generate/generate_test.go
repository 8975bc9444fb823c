package generate_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

func refs(t *testing.T, s *generatetest.Stack, seed float32) *featurecache.Features {
	t.Helper()
	img := make([]float32, s.Extract.ImagePixels())
	for i := range img {
		img[i] = float32(math.Sin(float64(seed) * float64(i+1)))
	}
	fs, err := s.Extract.Extract(context.Background(), [][]float32{img})
	if err != nil {
		t.Fatal(err)
	}
	return fs[0]
}

func TestValidate(t *testing.T) {
	s := generatetest.New(t)
	plain := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID})
	personal := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, Personalizer: s.Adapters(t)})
	ok := generate.Request{Prompt: "a small sneaker on the left", N: 1, Guidance: 4}
	other := refs(t, s, 1)
	other.Model = "another-model"
	tests := []struct {
		name     string
		svc      *generate.Service
		edit     func(r *generate.Request)
		want     cachet.Code
		contains string
	}{
		{"ok", plain, func(*generate.Request) {}, "", ""},
		{"no n: one image", plain, func(r *generate.Request) { r.N = 0 }, "", ""},
		{"negative n", plain, func(r *generate.Request) { r.N = -1 }, cachet.CodeInvalidArgument, "n must be"},
		{"too many", plain, func(r *generate.Request) { r.N = 17 }, cachet.CodeInvalidArgument, "n must be"},
		{"steps", plain, func(r *generate.Request) { r.Steps = -1 }, cachet.CodeInvalidArgument, "steps"},
		{"guidance", plain, func(r *generate.Request) { r.Guidance = -1 }, cachet.CodeInvalidArgument, "guidance"},
		{"guidance rescale", plain, func(r *generate.Request) { r.GuidanceRescale = 2 }, cachet.CodeInvalidArgument, "guidance_rescale"},
		{"clean renorm", plain, func(r *generate.Request) { r.CleanRenorm = -1 }, cachet.CodeInvalidArgument, "clean_renorm"},
		{"negative guidance", plain, func(r *generate.Request) { r.NegativeGuidance = -1 }, cachet.CodeInvalidArgument, "negative_guidance"},
		{"negative prompt, unknown word", plain, func(r *generate.Request) { r.NegativePrompt = "a purple coat" }, cachet.CodeInvalidArgument, `negative_prompt: unknown word "purple"`},
		{"negative prompt with a subject", personal, func(r *generate.Request) {
			r.Refs, r.NegativePrompt = refs(t, s, 2), "a coat"
		}, cachet.CodeInvalidArgument, "subject"},
		{"negative prompt", plain, func(r *generate.Request) { r.NegativePrompt, r.NegativeGuidance = " a small in the center ", 2 }, "", ""},
		{"empty prompt", plain, func(r *generate.Request) { r.Prompt = " " }, cachet.CodeInvalidArgument, "prompt is empty"},
		{"bad prompt", plain, func(r *generate.Request) { r.Prompt = "a purple spaceship" }, cachet.CodeInvalidArgument, ""},
		{"bad policy", plain, func(r *generate.Request) { r.Cache.Name = "warp" }, cachet.CodeInvalidArgument, "fora"},
		{"bad param", plain, func(r *generate.Request) {
			r.Cache = stepcache.Config{Name: "fora", Params: map[string]float64{"nope": 1}}
		}, cachet.CodeInvalidArgument, "interval"},
		{"subject without adapters", plain, func(r *generate.Request) { r.Refs = refs(t, s, 2) }, cachet.CodeUnavailable, "cachet train adapters"},
		{"subject of another model", personal, func(r *generate.Request) { r.Refs = other }, cachet.CodeConflict, "another-model"},
		{"subject with adapters", personal, func(r *generate.Request) { r.Refs = refs(t, s, 2) }, "", ""},
		{"detail", plain, func(r *generate.Request) { r.Detail = &generate.Detail{Strength: 0.6, Settle: 0.1} }, "", ""},
		{"detail above 1", plain, func(r *generate.Request) { r.Detail = &generate.Detail{Strength: 1.5} }, cachet.CodeInvalidArgument, "detail must be"},
		{"settle without detail", plain, func(r *generate.Request) { r.Detail = &generate.Detail{Settle: 0.2} }, cachet.CodeInvalidArgument, "give detail too"},
		{"detail with a subject", personal, func(r *generate.Request) {
			r.Refs, r.Detail = refs(t, s, 2), &generate.Detail{Strength: 0.5}
		}, cachet.CodeInvalidArgument, "subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := tc.svc.Validate(&r)
			if tc.want == "" {
				if err != nil || r.Steps != cachet.DefaultSteps || r.Prompt != "a small sneaker on the left" {
					t.Fatalf("Validate = %v; request %+v", err, r)
				}
				return
			}
			if cachet.CodeOf(err) != tc.want || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("Validate = %v, want %s containing %q", err, tc.want, tc.contains)
			}
		})
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestPersonalizedGenerationInjectsTheReference(t *testing.T) {
	s := generatetest.New(t)
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, Personalizer: s.Adapters(t)})
	ctx := context.Background()
	run := func(r *featurecache.Features, policy string) *generate.Result {
		t.Helper()
		res, err := svc.Generate(ctx, generate.Request{Prompt: "a large coat", N: 2, Seed: 5, Steps: 6, Guidance: 3, Refs: r,
			Cache: stepcache.Config{Name: policy}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.StepTimes) != 6 || res.N != 2 || res.Cache.Steps != 6 || res.Personalized != (r != nil) {
			t.Fatalf("result: %d steps, %d images, stats %+v", len(res.StepTimes), res.N, res.Cache)
		}
		return res
	}
	a, b := refs(t, s, 1), refs(t, s, 2)
	plain, withA, withA2, withB := run(nil, ""), run(a, ""), run(a, ""), run(b, "")
	if d := maxDiff(withA.Pixels, withA2.Pixels); d != 0 {
		t.Fatalf("the same request differs by %g", d)
	}
	if d := maxDiff(plain.Pixels, withA.Pixels); d < 1e-3 {
		t.Fatalf("the reference changed nothing (%g)", d)
	}
	if d := maxDiff(withA.Pixels, withB.Pixels); d < 1e-3 {
		t.Fatalf("two references gave the same images (%g)", d)
	}
	// A step-cache policy composes with the injection.
	fora := run(a, "fora")
	if fora.Cache.Policy != "fora" || fora.Cache.Reused == 0 {
		t.Fatalf("fora stats: %+v", fora.Cache)
	}
	pngs, err := withA.PNGs()
	if err != nil || len(pngs) != 2 || !strings.HasPrefix(string(pngs[0]), "\x89PNG") {
		t.Fatalf("PNGs: %v", err)
	}
}

func TestNegativePromptChangesTheImages(t *testing.T) {
	s := generatetest.New(t)
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID})
	run := func(negative string, scale float64) []float32 {
		t.Helper()
		res, err := svc.Generate(context.Background(), generate.Request{Prompt: "a small coat on the left", N: 2, Seed: 3, Steps: 4, Guidance: 3,
			NegativePrompt: negative, NegativeGuidance: scale})
		if err != nil {
			t.Fatal(err)
		}
		return res.Pixels
	}
	plain, off := run("", 0), run("a small on the left", 0)
	negative, again := run("a small on the left", 2), run("a small on the left", 2)
	if d := maxDiff(plain, off); d != 0 {
		t.Fatalf("a negative prompt at scale 0 changed the images by %g", d)
	}
	if d := maxDiff(negative, again); d != 0 {
		t.Fatalf("the same request differs by %g", d)
	}
	if d := maxDiff(plain, negative); d < 1e-3 {
		t.Fatalf("the negative prompt changed nothing (%g)", d)
	}
}

func TestRequestsWithoutAPolicyTakeTheDefault(t *testing.T) {
	s := generatetest.New(t)
	fora, err := stepcache.ParseConfig("fora:interval=2")
	if err != nil {
		t.Fatal(err)
	}
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, DefaultCache: fora})
	for _, tc := range []struct{ asked, want string }{{"", "fora"}, {"none", "none"}, {"taylorseer", "taylorseer"}} {
		t.Run(tc.asked, func(t *testing.T) {
			res, err := svc.Generate(context.Background(), generate.Request{Prompt: "a large coat", N: 1, Steps: 4, Guidance: 2,
				Cache: stepcache.Config{Name: tc.asked}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Cache.Policy != tc.want {
				t.Errorf("policy %q, want %q", res.Cache.Policy, tc.want)
			}
		})
	}
}

func TestRequestsWithoutSamplingSettingsTakeTheDefaults(t *testing.T) {
	s := generatetest.New(t)
	none, err := stepcache.ParseConfig("none")
	if err != nil {
		t.Fatal(err)
	}
	e := generate.NewEndpoint(generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, DefaultCache: none}), nil, nil, nil)
	f := func(v float64) *float64 { return &v }
	images := func(guidance, renorm *float64) []byte {
		t.Helper()
		req := cachet.GenerateRequest{Prompt: "a large coat", N: 1, Seed: 3, Steps: 4, Guidance: guidance, CleanRenorm: renorm}
		res, err := e.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if g, r := req.Sampling(); res.Guidance != g || res.CleanRenorm != r {
			t.Errorf("the answer says guidance %g, clean renorm %g; sampled with %g, %g", res.Guidance, res.CleanRenorm, g, r)
		}
		return res.Images[0].PNG
	}
	unset := images(nil, nil)
	for _, tc := range []struct {
		name             string
		guidance, renorm *float64
		same             bool
	}{
		{"the defaults named", f(cachet.DefaultGuidance), f(cachet.DefaultCleanRenorm), true},
		{"clean renorm 0 turns it off", nil, f(0), false},
		{"another guidance", f(2), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bytes.Equal(images(tc.guidance, tc.renorm), unset); got != tc.same {
				t.Errorf("same image as a request naming neither: %v, want %v", got, tc.same)
			}
		})
	}
}

// A detail redraw puts a small item back into its scene as the renderer would (exact background outside
// the item's box) and leaves large scenes alone.
func TestDetailRedrawsSmallItems(t *testing.T) {
	s := generatetest.New(t)
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID})
	run := func(prompt string, d generate.Detail) []float32 {
		t.Helper()
		res, err := svc.Generate(context.Background(), generate.Request{Prompt: prompt, N: 2, Seed: 3, Steps: 4, Guidance: 3, Detail: &d})
		if err != nil {
			t.Fatal(err)
		}
		return res.Pixels
	}
	const small = "a small coat on the left"
	plain, detailed := run(small, generate.Detail{}), run(small, generate.Detail{Strength: 0.5})
	sc, err := scene.Parse(small)
	if err != nil {
		t.Fatal(err)
	}
	x0, y0, side := sc.Box()
	outside := func(px []float32) (n, background int) {
		for i, v := range px {
			x, y := i%scene.CanvasSide, (i/scene.CanvasSide)%scene.CanvasSide
			if x >= x0 && x < x0+side && y >= y0 && y < y0+side {
				continue
			}
			n++
			if v == -1 {
				background++
			}
		}
		return n, background
	}
	if n, bg := outside(detailed); bg != n {
		t.Errorf("detail: %d of %d pixels outside the item's box are background", bg, n)
	}
	if n, bg := outside(plain); bg == n {
		t.Fatalf("the plain sample is already clean outside the box (%d pixels); the test cannot tell", n)
	}
	if settled := run(small, generate.Detail{Strength: 0.5, Settle: 0.3}); maxDiff(settled, detailed) < 1e-3 {
		t.Errorf("settling changed nothing")
	}
	const large = "a large coat"
	if d := maxDiff(run(large, generate.Detail{}), run(large, generate.Detail{Strength: 0.5})); d != 0 {
		t.Errorf("detail changed a large scene by %g", d)
	}

	// A request that names no redraw gets the service's default, unless it has a subject.
	byDefault := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, Personalizer: s.Adapters(t), DefaultDetail: generate.Detail{Strength: 0.5}})
	for _, tc := range []struct {
		name string
		req  generate.Request
		want float64
	}{
		{"small scene", generate.Request{Prompt: small}, 0.5},
		{"large scene", generate.Request{Prompt: large}, 0},
		{"named off", generate.Request{Prompt: small, Detail: &generate.Detail{}}, 0},
		{"with a subject", generate.Request{Prompt: small, Refs: refs(t, s, 2)}, 0},
	} {
		tc.req.N, tc.req.Steps, tc.req.Guidance = 1, 4, 3
		res, err := byDefault.Generate(context.Background(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Detail != tc.want {
			t.Errorf("%s: detail %g, want %g", tc.name, res.Detail, tc.want)
		}
	}

	// The API validates a request before it reads the subject's cache; the default redraw chosen then must
	// not turn into a conflict once the subject is attached.
	req := generate.Request{Prompt: small, N: 1, Steps: 4, Guidance: 3}
	if err := byDefault.Validate(&req); err != nil {
		t.Fatal(err)
	}
	req.Refs = refs(t, s, 2)
	if res, err := byDefault.Generate(context.Background(), req); err != nil || res.Detail != 0 {
		t.Fatalf("validated, then personalized: detail %v, err %v", res, err)
	}
}

// A redrawn small scene costs the request's step budget: draft + redraw (+ settling) fit in it.
func TestDetailDraftSteps(t *testing.T) {
	for _, tc := range []struct {
		detail      generate.Detail
		total, want int
	}{
		{generate.Detail{Strength: 0.65}, 50, 30},              // 30 + 20
		{generate.Detail{Strength: 0.65, Settle: 0.1}, 50, 28}, // 28 + 19 + 3
		{generate.Detail{Strength: 0.5}, 4, 2},                 // 2 + 1
		{generate.Detail{Strength: 1}, 50, 25},
		{generate.Detail{}, 50, 50},
		{generate.Detail{Strength: 0.7}, 1, 1},
	} {
		t.Run(fmt.Sprintf("%+v of %d", tc.detail, tc.total), func(t *testing.T) {
			if got := tc.detail.DraftSteps(tc.total); got != tc.want {
				t.Errorf("DraftSteps = %d, want %d", got, tc.want)
			}
		})
	}
}
