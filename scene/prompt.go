package scene

import (
	"fmt"
	"strings"

	"github.com/cachetlab/cachet"
)

// The prompt grammar (canonical form, as Format writes it):
//
//	a (small|large) [mirrored] <class> [on the left|on the right|at the top|at the bottom|in the center][, inverted]
//
// The position phrase appears exactly for small items. Parse also accepts: any case, extra spaces, "an"
// or no article, no size word (→ large), no comma before "inverted", a final full stop, "centre" and
// "middle" for "center", "tshirt" for "t-shirt", and the modifiers in any order after the article.

// positionPhrases are the canonical phrases, indexed by Position.
var positionPhrases = [numPositions]string{"in the center", "on the left", "on the right", "at the top", "at the bottom"}

// Format is the canonical prompt for a scene (which Parse maps back to s). It does not validate s;
// an out-of-range class or position formats as "?".
func Format(s Scene) string {
	var b strings.Builder
	b.WriteString("a ")
	if s.Large {
		b.WriteString("large ")
	} else {
		b.WriteString("small ")
	}
	if s.Mirrored {
		b.WriteString("mirrored ")
	}
	if s.Class >= 0 && s.Class < NumClasses {
		b.WriteString(ClassNames[s.Class])
	} else {
		b.WriteString("?")
	}
	if !s.Large {
		b.WriteString(" ")
		if s.Position >= 0 && s.Position < numPositions {
			b.WriteString(positionPhrases[s.Position])
		} else {
			b.WriteString("?")
		}
	}
	if s.Inverted {
		b.WriteString(", inverted")
	}
	return b.String()
}

// FormatWithoutClass is the scene's prompt with its class word left out ("a small in the center"): what
// the scene would be as any class, the negative prompt that class-contrast guidance pushes away from.
func FormatWithoutClass(s Scene) string {
	if s.Class < 0 || s.Class >= NumClasses {
		return Format(s)
	}
	return strings.Replace(Format(s), " "+ClassNames[s.Class], "", 1)
}

// Vocabulary is every word Format can write, in a fixed order (the text encoder's token list: never
// reorder it, only append).
func Vocabulary() []string {
	v := []string{"a", "small", "large", "mirrored"}
	v = append(v, ClassNames[:]...)
	return append(v, "on", "in", "at", "the", "left", "right", "top", "bottom", "center", "inverted")
}

// Words is the word sequence of prompt's canonical form: lowercase, no punctuation, every word in
// Vocabulary. Canonicalising means every way of writing one scene encodes to the same tokens, the ones
// training saw.
func Words(prompt string) ([]string, error) {
	s, err := Parse(prompt)
	if err != nil {
		return nil, err
	}
	return strings.Fields(strings.ReplaceAll(Format(s), ",", "")), nil
}

// aliases map accepted spellings onto vocabulary words.
var aliases = map[string]string{"an": "a", "centre": "center", "middle": "center", "tshirt": "t-shirt"}

// Parse reads a prompt into a Scene. Its errors are CodeInvalidArgument and say how to fix the prompt.
func Parse(prompt string) (Scene, error) {
	var s Scene
	words := tokenize(prompt)
	if len(words) == 0 {
		return s, invalid("the prompt is empty; describe a scene, e.g. %q", example)
	}
	var (
		size, class, pos   string // the words that set them, for error messages
		mirrored, inverted bool
		comma              bool // the previous token was a comma
	)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if comma && w != "inverted" {
			return s, invalid(`a comma in a prompt may only come before "inverted"`)
		}
		comma = false
		switch {
		case w == ",":
			comma = true
		case w == "a":
			if i != 0 {
				return s, invalid(`the article %q may only start the prompt`, words[i])
			}
		case w == "small" || w == "large":
			if size != "" {
				return s, repeated(size, w, "size")
			}
			size = w
		case w == "mirrored":
			if mirrored {
				return s, invalid(`"mirrored" appears twice in the prompt`)
			}
			mirrored = true
		case w == "inverted":
			if inverted {
				return s, invalid(`"inverted" appears twice in the prompt`)
			}
			inverted = true
		case w == "on" || w == "in" || w == "at":
			phrase, p, err := readPosition(words[i:])
			if err != nil {
				return s, err
			}
			if pos != "" {
				return s, repeated(pos, phrase, "position")
			}
			pos, s.Position = phrase, p
			i += 2
		case classIndex(w) >= 0:
			if class != "" {
				return s, repeated(class, w, "item")
			}
			class, s.Class = w, classIndex(w)
		case w == "the" || w == "left" || w == "right" || w == "top" || w == "bottom" || w == "center":
			return s, invalid("%q belongs in a position phrase; use one of: %s", w, strings.Join(positionPhrases[:], ", "))
		default:
			return s, unknownWord(w)
		}
	}
	if comma {
		return s, invalid(`the prompt ends with a comma; a comma may only come before "inverted"`)
	}
	if class == "" {
		return s, invalid("the prompt names no item; name one of: %s", strings.Join(ClassNames[:], ", "))
	}
	s.Large = size != "small" // no size word means large
	// "in the center" is true of a large item, so it is accepted (and dropped by Format); any other
	// position needs a small one.
	if s.Large && s.Position != Center {
		why := "a large item fills the canvas and is always centred"
		if size == "" {
			why = "without a size word the item is large, and a large item is always centred"
		}
		return s, invalid("%q applies to small items only: %s; write %q", pos, why,
			Format(Scene{Class: s.Class, Position: s.Position, Mirrored: mirrored, Inverted: inverted}))
	}
	s.Mirrored, s.Inverted = mirrored, inverted
	return s, nil
}

const example = "a small mirrored sneaker on the left, inverted"

// tokenize lowercases prompt, drops one final full stop, splits it into words and commas (a comma is a
// token of its own) and applies the aliases.
func tokenize(prompt string) []string {
	p := strings.ToLower(strings.TrimSpace(prompt))
	p = strings.TrimSuffix(p, ".")
	p = strings.ReplaceAll(p, ",", " , ")
	words := strings.Fields(p)
	for i, w := range words {
		if a, ok := aliases[w]; ok {
			words[i] = a
		}
	}
	return words
}

// readPosition reads a three-word position phrase at the start of words.
func readPosition(words []string) (phrase string, p Position, err error) {
	n := min(len(words), 3)
	phrase = strings.Join(words[:n], " ")
	for i, c := range positionPhrases {
		if phrase == c {
			return phrase, Position(i), nil
		}
	}
	return phrase, 0, invalid("%q is not a position; use one of: %s", phrase, strings.Join(positionPhrases[:], ", "))
}

func classIndex(w string) int {
	for i, c := range ClassNames {
		if w == c {
			return i
		}
	}
	return -1
}

// repeated is the error for a second word of one kind: the same word twice, or a contradiction.
func repeated(first, second, kind string) error {
	if first == second {
		return invalid("%q appears twice in the prompt", first)
	}
	return invalid("the prompt gives two %ss, %q and %q; choose one", kind, first, second)
}

func unknownWord(w string) error {
	if r := []rune(w); len(r) > 40 { // a pasted paragraph should not come back whole in the error
		w = string(r[:40]) + "…"
	}
	return invalid("unknown word %q in the prompt; prompts use only: %s (e.g. %q)", w, strings.Join(Vocabulary(), ", "), example)
}

func invalid(format string, args ...any) error {
	return cachet.Errorf(cachet.CodeInvalidArgument, "%s", fmt.Sprintf(format, args...))
}

// Grammar describes the prompt language for clients that build prompts (GET /v1/catalog).
func Grammar() cachet.SceneGrammar {
	g := cachet.SceneGrammar{Classes: ClassNames[:], Example: example,
		Grammar: "a (small|large) [mirrored] <class> [<position phrase>][, inverted]; the position phrase is for small items only"}
	for _, p := range Positions() {
		g.Positions = append(g.Positions, cachet.ScenePosition{Name: p.String(), Phrase: positionPhrases[p]})
	}
	return g
}
