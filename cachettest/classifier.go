package cachettest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
)

// Classifier keeps collections in memory. Its "model" predicts a collection's first label (or the built-in
// classes' first) for every image, at probability 1.
type Classifier struct {
	mu          sync.Mutex
	collections map[string]*cachet.Collection
	order       []string
	samples     map[string][]cachet.Sample
}

var _ cachet.Classifier = (*Classifier)(nil)

// BuiltinLabels are the default model's classes, the zero-shot labels.
var BuiltinLabels = []string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"}

// NewClassifier has no collections.
func NewClassifier() *Classifier {
	return &Classifier{collections: map[string]*cachet.Collection{}, samples: map[string][]cachet.Sample{}}
}

// CreateCollection needs a free name and 2 or more distinct labels.
func (c *Classifier) CreateCollection(_ context.Context, in cachet.NewCollection) (*cachet.Collection, error) {
	if in.Name == "" {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name must be 1…100 characters")
	}
	if len(in.Labels) < 2 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "labels: give 2…100 class names (got %d)", len(in.Labels))
	}
	for i, l := range in.Labels {
		if slices.Contains(in.Labels[:i], l) {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "label %q appears twice", l)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, col := range c.collections {
		if col.Name == in.Name {
			return nil, cachet.Errorf(cachet.CodeConflict, "a collection named %q exists", in.Name)
		}
	}
	col := &cachet.Collection{ID: uuid.NewString(), Name: in.Name, Labels: slices.Clone(in.Labels), Alpha: 0.3, Beta: 1, CreatedAt: time.Now().UTC()}
	c.collections[col.ID] = col
	c.order = append(c.order, col.ID)
	out := *col
	return &out, nil
}

func (c *Classifier) get(id string) (*cachet.Collection, error) {
	col, ok := c.collections[id]
	if !ok {
		return nil, cachet.Errorf(cachet.CodeNotFound, "no collection %q", id)
	}
	return col, nil
}

// Collection reads one.
func (c *Classifier) Collection(_ context.Context, id string) (*cachet.Collection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	col, err := c.get(id)
	if err != nil {
		return nil, err
	}
	out := *col
	return &out, nil
}

// Collections lists them, oldest first.
func (c *Classifier) Collections(context.Context) ([]cachet.Collection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []cachet.Collection{}
	for _, id := range c.order {
		out = append(out, *c.collections[id])
	}
	return out, nil
}

// AddSamples takes images with labels of the collection's, or none.
func (c *Classifier) AddSamples(_ context.Context, id string, samples []cachet.Sample) (*cachet.Collection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	col, err := c.get(id)
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "no samples")
	}
	for i, s := range samples {
		switch {
		case len(s.Image) == 0:
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "sample %d has no image", i)
		case s.Label != "" && !slices.Contains(col.Labels, s.Label):
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "sample %d: label %q is not one of the collection's", i, s.Label)
		case s.Label != "":
			col.Labelled++
		}
	}
	col.Samples += len(samples)
	c.samples[id] = append(c.samples[id], samples...)
	out := *col
	return &out, nil
}

// Build makes a model over the samples it has.
func (c *Classifier) Build(_ context.Context, id string, req cachet.BuildRequest) (*cachet.Collection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	col, err := c.get(id)
	if err != nil {
		return nil, err
	}
	if col.Samples == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "collection %s has no samples; add some first", id)
	}
	method := req.Method
	if method == "" {
		method = "tfup"
		if col.Labelled > 0 {
			method = "tip-adapter"
		}
	}
	col.Model = &cachet.CacheModelInfo{ID: time.Now().UnixNano(), Method: method, Entries: col.Samples, Samples: col.Samples,
		Alpha: col.Alpha, Beta: col.Beta, Values: "labels", BuiltAt: time.Now().UTC()}
	out := *col
	return &out, nil
}

// Classify answers each image with its first label.
func (c *Classifier) Classify(_ context.Context, req cachet.ClassifyRequest) (*cachet.ClassifyResult, error) {
	if len(req.Images) == 0 || len(req.Images) > 256 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "give 1…256 images (got %d)", len(req.Images))
	}
	labels, res := BuiltinLabels, &cachet.ClassifyResult{Method: "zero-shot", Collection: req.Collection, Rerank: req.Rerank}
	if req.Collection != "" {
		c.mu.Lock()
		col, err := c.get(req.Collection)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if col.Model == nil {
			return nil, cachet.Errorf(cachet.CodeConflict, "collection %s is not built yet; build it first", col.ID)
		}
		labels, res.Method, res.CacheModel, res.CacheEntries = col.Labels, col.Model.Method, col.Model.ID, col.Model.Entries
	}
	for range req.Images {
		res.Predictions = append(res.Predictions, cachet.ImagePrediction{Top: []cachet.LabelScore{{Label: labels[0], Probability: 1}}})
	}
	return res, nil
}
