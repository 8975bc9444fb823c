package scene_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
)

func TestFormatParseRoundTrip(t *testing.T) {
	vocab := scene.Vocabulary()
	n := 0
	for class := range scene.NumClasses {
		for _, s := range scene.AllScenes(class) {
			n++
			prompt := scene.Format(s)
			t.Run(prompt, func(t *testing.T) {
				got, err := scene.Parse(prompt)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != s {
					t.Fatalf("Parse(Format(%+v)) = %+v", s, got)
				}
				words, err := scene.Words(prompt)
				if err != nil {
					t.Fatalf("Words: %v", err)
				}
				if joined := strings.Join(words, " "); joined != strings.ReplaceAll(prompt, ",", "") {
					t.Fatalf("Words = %q", joined)
				}
				for _, w := range words {
					if !slices.Contains(vocab, w) {
						t.Fatalf("word %q is not in Vocabulary()", w)
					}
				}
			})
		}
	}
	if n != 240 {
		t.Fatalf("%d scenes, want 10 classes × (1 large + 5 small) × 2 mirrored × 2 inverted = 240", n)
	}
}

func TestFormatExamples(t *testing.T) {
	tests := []struct {
		s    scene.Scene
		want string
	}{
		{scene.Canonical(4), "a large coat"},
		{scene.Scene{Class: 7, Position: scene.Left, Mirrored: true, Inverted: true}, "a small mirrored sneaker on the left, inverted"},
		{scene.Scene{Class: 0}, "a small t-shirt in the center"},
		{scene.Scene{Class: 9, Large: true, Inverted: true}, "a large boot, inverted"},
		{scene.Scene{Class: 8, Position: scene.Bottom}, "a small bag at the bottom"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := scene.Format(tc.s); got != tc.want {
				t.Fatalf("Format = %q, want %q", got, tc.want)
			}
		})
	}
}

// The class-free prompt keeps every other word, so a negative prompt differs from its prompt in the class alone.
func TestFormatWithoutClass(t *testing.T) {
	for _, tc := range []struct {
		s    scene.Scene
		want string
	}{
		{scene.Canonical(4), "a large"},
		{scene.Scene{Class: 7, Position: scene.Left, Mirrored: true, Inverted: true}, "a small mirrored on the left, inverted"},
		{scene.Scene{Class: 0}, "a small in the center"},
		{scene.Scene{Class: 9, Large: true, Inverted: true}, "a large, inverted"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := scene.FormatWithoutClass(tc.s); got != tc.want {
				t.Fatalf("FormatWithoutClass = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseVariants(t *testing.T) {
	tests := []struct {
		prompt string
		want   scene.Scene
	}{
		{"A Large COAT", scene.Scene{Class: 4, Large: true}},
		{"  a   small   sneaker   on  the   left ,inverted  ", scene.Scene{Class: 7, Position: scene.Left, Inverted: true}},
		{"a small sneaker on the left inverted", scene.Scene{Class: 7, Position: scene.Left, Inverted: true}},
		{"an small bag at the top", scene.Scene{Class: 8, Position: scene.Top}},
		{"small bag at the top", scene.Scene{Class: 8, Position: scene.Top}},
		{"coat", scene.Scene{Class: 4, Large: true}},
		{"a mirrored dress, inverted", scene.Scene{Class: 3, Large: true, Mirrored: true, Inverted: true}},
		{"a large coat in the center", scene.Scene{Class: 4, Large: true}},
		{"a small shirt in the centre.", scene.Scene{Class: 6}},
		{"a small shirt in the middle", scene.Scene{Class: 6}},
		{"a tshirt", scene.Scene{Class: 0, Large: true}},
		{"a T-Shirt", scene.Scene{Class: 0, Large: true}},
		{"a mirrored small boot at the bottom", scene.Scene{Class: 9, Position: scene.Bottom, Mirrored: true}},
		{"inverted small trouser on the right", scene.Scene{Class: 1, Position: scene.Right, Inverted: true}},
	}
	for _, tc := range tests {
		t.Run(tc.prompt, func(t *testing.T) {
			got, err := scene.Parse(tc.prompt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Parse = %+v, want %+v", got, tc.want)
			}
			words, err := scene.Words(tc.prompt)
			if err != nil {
				t.Fatalf("Words: %v", err)
			}
			if joined, want := strings.Join(words, " "), strings.ReplaceAll(scene.Format(tc.want), ",", ""); joined != want {
				t.Fatalf("Words = %q, want %q", joined, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		prompt string
		want   []string // fragments of the message
	}{
		{"", []string{"empty", "a small mirrored sneaker on the left, inverted"}},
		{"   ", []string{"empty"}},
		{"a large hat", []string{`unknown word "hat"`, "t-shirt", "sneaker", "inverted", "mirrored"}},
		{"a small coat flipped", []string{`unknown word "flipped"`}},
		{"a small mirrored", []string{"names no item", "t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot"}},
		{"a large coat on the left", []string{`"on the left" applies to small items only`, "always centred", `"a small coat on the left"`}},
		{"a coat at the top, inverted", []string{"without a size word the item is large", `"a small coat at the top, inverted"`}},
		{"a small large coat", []string{`two sizes, "small" and "large"`, "choose one"}},
		{"a small small coat", []string{`"small" appears twice`}},
		{"a mirrored mirrored coat", []string{`"mirrored" appears twice`}},
		{"a coat, inverted, inverted", []string{`"inverted" appears twice`}},
		{"a coat bag", []string{`two items, "coat" and "bag"`}},
		{"a small coat on the left at the top", []string{`two positions, "on the left" and "at the top"`}},
		{"a small coat on the top", []string{`"on the top" is not a position`, "at the top"}},
		{"a small coat on the", []string{`"on the" is not a position`}},
		{"a small coat left", []string{`"left" belongs in a position phrase`, "on the left"}},
		{"a small coat, on the left", []string{`comma in a prompt may only come before "inverted"`}},
		{"a coat,", []string{"ends with a comma"}},
		{"small a coat", []string{`"a" may only start the prompt`}},
	}
	for _, tc := range tests {
		t.Run(tc.prompt, func(t *testing.T) {
			_, err := scene.Parse(tc.prompt)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if !cachet.HasCode(err, cachet.CodeInvalidArgument) {
				t.Fatalf("code %s, want invalid_argument: %v", cachet.CodeOf(err), err)
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q lacks %q", err, f)
				}
			}
			if _, werr := scene.Words(tc.prompt); werr == nil {
				t.Error("Words accepted it")
			}
		})
	}
}

func TestVocabulary(t *testing.T) {
	v := scene.Vocabulary()
	want := "a small large mirrored t-shirt trouser pullover dress coat sandal shirt sneaker bag boot " +
		"on in at the left right top bottom center inverted"
	// The order is the text encoder's token ids: changing it silently breaks trained weights.
	if got := strings.Join(v, " "); got != want {
		t.Fatalf("Vocabulary() = %q, want %q", got, want)
	}
	v[0] = "changed"
	if scene.Vocabulary()[0] != "a" {
		t.Fatal("Vocabulary() shares its slice with callers")
	}
}
