package cachet

// Catalog is what a client needs to build requests without guessing: the model's prompt grammar, the
// sampling presets, the step-cache policies and the limits (GET /v1/catalog; the console's forms).
type Catalog struct {
	Model   string       `json:"model"`
	Scene   SceneGrammar `json:"scene"`
	Presets []Preset     `json:"presets"`
	// DefaultPreset is the preset a request naming no steps and no policy gets.
	DefaultPreset string       `json:"default_preset"`
	Policies      []PolicyInfo `json:"policies"`
	MaxImages     int          `json:"max_images"` // n per generation
	MaxSteps      int          `json:"max_steps"`
	Upload        UploadLimits `json:"upload"`
	// Jobs says whether model work runs on the job queue (async requests, /v1/jobs) on this server.
	Jobs bool `json:"jobs"`
}

// SceneGrammar is the default model's prompt language: a (small|large) [mirrored] <class>
// [<position phrase>][, inverted], the position phrase for small items only.
type SceneGrammar struct {
	Classes   []string        `json:"classes"`
	Positions []ScenePosition `json:"positions"`
	Grammar   string          `json:"grammar"`
	Example   string          `json:"example"`
}

// ScenePosition is where a small item sits and how a prompt says it.
type ScenePosition struct {
	Name   string `json:"name"`
	Phrase string `json:"phrase"`
}

// Preset is a named speed/quality trade-off: a step budget and a step-cache policy, with what was
// measured for it.
type Preset struct {
	Name  string      `json:"name"`
	Label string      `json:"label"`
	Steps int         `json:"steps"`
	Cache CachePolicy `json:"cache"`
	Note  string      `json:"note"`
}

// PolicyInfo is one step-cache policy and its parameters.
type PolicyInfo struct {
	Name   string        `json:"name"`
	Help   string        `json:"help"`
	Params []PolicyParam `json:"params"`
}

// PolicyParam is a policy's parameter: its default and the range the server accepts.
type PolicyParam struct {
	Name    string  `json:"name"`
	Default float64 `json:"default"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Integer bool    `json:"integer"`
	Help    string  `json:"help,omitempty"`
}
