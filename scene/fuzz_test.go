package scene_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
)

// FuzzParse: Parse never panics and refuses only with invalid_argument; a scene it accepts is valid,
// formats to a prompt that parses back to the same scene, and its canonical words are all in the
// vocabulary.
func FuzzParse(f *testing.F) {
	for _, p := range []string{
		"a small mirrored sneaker on the left, inverted", "A Large COAT", "coat", "an small bag at the top.",
		"inverted small trouser on the right", "a small shirt in the middle", "a tshirt", ", inverted coat",
		"a large coat at the top", "a small coat on the", "coat,", "coat, , inverted", "a a coat", "coat coat",
		"on the left", "\xff", "",
	} {
		f.Add(p)
	}
	vocab := scene.Vocabulary()
	f.Fuzz(func(t *testing.T, prompt string) {
		s, err := scene.Parse(prompt)
		if err != nil {
			if cachet.CodeOf(err) != cachet.CodeInvalidArgument {
				t.Fatalf("Parse(%q): %v, not invalid_argument", prompt, err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, invalid: %v", prompt, s, err)
		}
		canonical := scene.Format(s)
		back, err := scene.Parse(canonical)
		if err != nil || back != s {
			t.Fatalf("Parse(%q) = %+v; its format %q parses to %+v, %v", prompt, s, canonical, back, err)
		}
		words, err := scene.Words(prompt)
		if err != nil {
			t.Fatalf("Words(%q): %v", prompt, err)
		}
		if got, want := strings.Join(words, " "), strings.ReplaceAll(canonical, ",", ""); got != want {
			t.Fatalf("Words(%q) = %q, want %q", prompt, got, want)
		}
		for _, w := range words {
			if !slices.Contains(vocab, w) {
				t.Fatalf("Words(%q): %q is not in the vocabulary", prompt, w)
			}
		}
	})
}
