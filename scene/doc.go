// Package scene is the world of Cachet's default model: a Fashion-MNIST item drawn into a small scene
// that a prompt describes exactly, so prompt alignment and subject fidelity can be measured exactly too. It
// is pure Go (no libtorch) and deterministic: the same item and scene always render to the same bytes, on
// every platform (integer arithmetic only). The service uses it at run time (prompts, canvases, the detail
// redraw); package dataset reads the training data.
//
// # Scene geometry
//
// A scene is a 32×32 grayscale canvas with one item in a square box. Pixel columns x and rows y, both
// inclusive:
//
//	scene                   box      x        y        item
//	large (always centred)  28×28    2..29    2..29    unchanged
//	small, center           16×16    8..23    8..23    shrunk 28→16 by area averaging
//	small, left             16×16    1..16    8..23
//	small, right            16×16    15..30   8..23
//	small, top              16×16    8..23    1..16
//	small, bottom           16×16    8..23    15..30
//
// Small boxes keep 1 pixel from the edge and large ones 2, so the outermost ring of pixels is always
// background (Analyze reads the polarity there), and the off-centre boxes are shifted from the centre
// box as far as the canvas allows (7 px; the boxes overlap), which makes position unambiguous to read
// back. Area averaging keeps a 0 background at 0, so nothing outside the box is ever lit. Mirrored flips the
// item left↔right inside its box; Inverted maps every canvas pixel p to 255−p (a dark item on a light
// background). Canonical(class) — large, upright, not inverted — is the item exactly as Fashion-MNIST
// has it: the reference render used for personalisation.
//
// # Prompts
//
// Format and Parse map scenes to and from prompts like "a small mirrored sneaker on the left,
// inverted" or "a large coat"; Vocabulary lists their words (the text encoder's tokens) and Words
// gives a prompt's canonical word sequence.
//
// # Reading a render back
//
// Derender undoes a known scene (crop, resize back to 28×28, un-mirror, un-invert) so a classifier
// trained on real items can judge a generated item. Analyze reads size, position and inversion from
// any canvas without knowing its scene, for alignment metrics.
package scene
