package classify

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/cachetlab/cachet"
)

// Build selects the collection's cache entries and writes them as its new cache model. The new model
// becomes visible in one transaction (see store.writeModel): requests during a rebuild use the old one.
//
// Method: TFUP over every sample (unlabelled pool, pseudo-labels from the zero-shot head) or
// Tip-Adapter over the labelled samples; "" picks Tip-Adapter when any sample is labelled.
func (s *Service) Build(ctx context.Context, id string, req cachet.BuildRequest) (*cachet.Collection, error) {
	start := time.Now()
	c, err := s.st.collection(ctx, id)
	if err != nil {
		return nil, err
	}
	plan, err := s.planBuild(c, req)
	if err != nil {
		return nil, err
	}
	rows, err := s.st.samples(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "collection %q has no samples; add images with POST /v1/collections/%s/samples", c.Name, id)
	}
	if plan.method == MethodTip && c.Labelled == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "collection %q has no labelled samples for Tip-Adapter; label some samples or build with method %q", c.Name, MethodTFUP)
	}
	whiten, propagate, err := buildSpace(c, len(rows), plan.method, plan.values, req)
	if err != nil {
		return nil, err
	}
	if err := s.refreshFeatures(ctx, rows); err != nil {
		return nil, err
	}
	head, err := s.buildHead(ctx, c, rows, whiten, propagate)
	if err != nil {
		return nil, err
	}
	m := &Model{Method: plan.method, Head: head, Alpha: c.Alpha, Beta: c.Beta}
	var sampleIDs []int64
	perClass := 0
	switch {
	case propagate:
		sampleIDs, perClass, err = propagatedEntries(ctx, m, rows)
	case plan.method == MethodTFUP:
		sampleIDs, perClass = tfupEntries(m, rows, len(c.Labels))
	default:
		sampleIDs, perClass, err = s.labelledEntries(ctx, c, m, rows, plan, req.Tune)
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.st.writeModel(ctx, builtModel{collectionID: id, featureKey: s.z.Key(), model: m, sampleIDs: sampleIDs,
		samples: len(rows), perClass: perClass, seconds: time.Since(start).Seconds()}); err != nil {
		return nil, err
	}
	return s.st.collection(ctx, id)
}

// buildPlan is a build request checked against its collection: the method, the Tip-Adapter values and
// their ridge.
type buildPlan struct {
	method Method
	values Values
	lambda float64
}

// planBuild checks a build request before any sample is read.
func (s *Service) planBuild(c *cachet.Collection, req cachet.BuildRequest) (buildPlan, error) {
	method := Method(req.Method)
	switch method {
	case "":
		method = MethodTFUP
		if c.Labelled > 0 {
			method = MethodTip
		}
	case MethodTFUP, MethodTip:
	default:
		return buildPlan{}, cachet.Errorf(cachet.CodeInvalidArgument, "method %q: use %q or %q (or leave it out)", req.Method, MethodTFUP, MethodTip)
	}
	values, err := ParseValues(req.Values)
	if err != nil {
		return buildPlan{}, err
	}
	lambda := DefaultLambda
	if req.Lambda != nil {
		lambda = *req.Lambda
	}
	switch {
	case values == ValuesSolved && method != MethodTip:
		return buildPlan{}, cachet.Errorf(cachet.CodeInvalidArgument, "values %q apply to labelled samples; build with method %q", ValuesSolved, MethodTip)
	case req.Lambda != nil && (values != ValuesSolved || math.IsNaN(lambda) || lambda <= 0 || lambda > 1e6):
		return buildPlan{}, cachet.Errorf(cachet.CodeInvalidArgument, "lambda (got %v) must be in (0, 1e6] and goes with values %q", lambda, ValuesSolved)
	case req.Tune && method != MethodTip:
		return buildPlan{}, cachet.Errorf(cachet.CodeInvalidArgument, "tune picks α and β on labelled samples; build with method %q", MethodTip)
	}
	if err := s.checkSolveSize(c.Name, c.Labelled, values, req.Tune); err != nil {
		return buildPlan{}, err
	}
	return buildPlan{method: method, values: values, lambda: lambda}, nil
}

// buildHead is the collection's zero-shot head, in the samples' whitened space when whiten says so.
func (s *Service) buildHead(ctx context.Context, c *cachet.Collection, rows []sampleRow, whiten, propagate bool) (*Head, error) {
	head, err := s.collectionHead(ctx, c, rows)
	if err != nil || !whiten {
		return head, err
	}
	feats := make([][]float32, len(rows))
	for i, r := range rows {
		feats[i] = r.features
	}
	rank := DefaultWhitenRank
	if propagate {
		rank = min(PropagateRank, len(rows)/whitenSamplesPerDirection)
	}
	mean, basis, err := FitWhitening(feats, rank, WhitenPower)
	if err != nil {
		return nil, err
	}
	return head.Whitened(mean, basis)
}

// tfupEntries fills m with TFUP's representative samples, pseudo-labelled by m's head.
func tfupEntries(m *Model, rows []sampleRow, labels int) (sampleIDs []int64, perClass int) {
	probs := make([][]float64, len(rows))
	keys := make([][]float32, len(rows))
	for i, r := range rows {
		keys[i] = m.Head.Project(r.features)
		probs[i] = m.Head.Probs(keys[i])
	}
	perClass = NumRepresentatives(len(rows), labels)
	for _, rep := range SelectRepresentatives(probs, labels, perClass) {
		m.Entries = append(m.Entries, Entry{Key: keys[rep.Index], Label: rep.Label, Probs: probs[rep.Index]})
		sampleIDs = append(sampleIDs, rows[rep.Index].id)
	}
	return sampleIDs, perClass
}

// labelledEntries fills m with Tip-Adapter's keys, one per labelled sample, and its values (labels, or
// solved; α and β tuned when asked).
func (s *Service) labelledEntries(ctx context.Context, c *cachet.Collection, m *Model, rows []sampleRow, plan buildPlan, tune bool) (sampleIDs []int64, perClass int, err error) {
	counts := make([]int, len(c.Labels))
	for _, r := range rows {
		if r.label == nil {
			continue
		}
		m.Entries = append(m.Entries, Entry{Key: m.Head.Project(r.features), Label: *r.label})
		sampleIDs = append(sampleIDs, r.id)
		counts[*r.label]++
	}
	for _, n := range counts {
		perClass = max(perClass, n)
	}
	m.Values, m.Lambda = plan.values, plan.lambda
	// Samples labelled since the collection was read count too.
	if err := s.checkSolveSize(c.Name, len(m.Entries), plan.values, tune); err != nil {
		return nil, 0, err
	}
	if tune && len(m.Entries) >= 2 {
		_, err = TuneLeaveOneOut(ctx, m)
	} else {
		err = m.ResolveContext(ctx)
	}
	return sampleIDs, perClass, err
}

// checkSolveSize refuses solved values or tune over more labelled samples than the service's bound
// (MaxSolvedSamples by default), before any work: their cost grows with the square (tune) to the cube
// (solved values) of the count.
func (s *Service) checkSolveSize(collection string, labelled int, values Values, tune bool) error {
	limit := s.cfg.MaxSolvedSamples
	if limit <= 0 {
		limit = MaxSolvedSamples
	}
	if (values != ValuesSolved && !tune) || labelled <= limit {
		return nil
	}
	what := "solved values"
	switch {
	case tune && values == ValuesSolved:
		what = "solved values and tune"
	case tune:
		what = "tune"
	}
	return cachet.Errorf(cachet.CodeInvalidArgument, "a build with %s takes at most %d labelled samples (collection %q has %d; the work grows with the square to the cube of the count): build with \"values\": %q and without \"tune\", where each sample votes for its label with the collection's α and β",
		what, limit, collection, labelled, ValuesLabels)
}

// buildSpace decides whether a build whitens and propagates: by default TFUP whitens over at least
// MinWhitenSamples samples, and a build propagates over MinWhitenSamples…MaxPropagateSamples samples when
// some are unlabelled and neither solved values nor tuning were asked for. Propagation implies whitening.
func buildSpace(c *cachet.Collection, samples int, method Method, values Values, req cachet.BuildRequest) (whiten, propagate bool, err error) {
	whiten = method == MethodTFUP && samples >= MinWhitenSamples
	if req.Whiten != nil {
		whiten = *req.Whiten
	}
	propagate = samples >= MinWhitenSamples && samples <= MaxPropagateSamples && samples > c.Labelled &&
		(req.Whiten == nil || *req.Whiten) && values == ValuesLabels && !req.Tune
	if req.Propagate != nil {
		propagate = *req.Propagate
	}
	if propagate {
		switch {
		case req.Whiten != nil && !*req.Whiten:
			return false, false, cachet.Errorf(cachet.CodeInvalidArgument, "propagation runs in the samples' whitened space; leave \"whiten\" out or build with \"propagate\": false")
		case values != ValuesLabels || req.Tune:
			return false, false, cachet.Errorf(cachet.CodeInvalidArgument, "a propagated cache has its own values and weights; solved values and tune need \"propagate\": false")
		case samples > MaxPropagateSamples:
			return false, false, cachet.Errorf(cachet.CodeInvalidArgument, "label propagation builds an exact graph over at most %d samples (collection %q has %d); build with \"propagate\": false", MaxPropagateSamples, c.Name, samples)
		}
		whiten = true
	}
	if whiten && samples < MinWhitenSamples {
		what := "whitening"
		if propagate {
			what = "label propagation"
		}
		return false, false, cachet.Errorf(cachet.CodeInvalidArgument, "%s needs at least %d samples (collection %q has %d); add samples or build with \"whiten\": false and \"propagate\": false", what, MinWhitenSamples, c.Name, samples)
	}
	return whiten, propagate, nil
}

// propagatedEntries makes every sample a key of m (whose head is whitened) valued with its label
// distribution after propagation over the samples' graph: from the labelled samples for Tip-Adapter, from
// the head's zero-shot distributions for TFUP. Samples the propagation never reached are left out.
func propagatedEntries(ctx context.Context, m *Model, rows []sampleRow) (sampleIDs []int64, perClass int, err error) {
	classes := len(m.Head.Labels)
	keys := make([][]float32, len(rows))
	start := make([][]float64, len(rows))
	for i, r := range rows {
		keys[i] = m.Head.Project(r.features)
		if m.Method == MethodTFUP {
			start[i] = Softmax(m.Head.Cosines(keys[i]), propagateScale)
			continue
		}
		start[i] = make([]float64, classes)
		if r.label != nil {
			start[i][*r.label] = 1
		}
	}
	graph, err := NeighbourGraph(ctx, keys, propagateNeighbours, PropagatedBeta)
	if err != nil {
		return nil, 0, err
	}
	counts := make([]int, classes)
	for i, v := range Propagate(graph, start, propagateSpread, propagateIterations) {
		if slices.Max(v) == 0 {
			continue
		}
		label := Argmax(v)
		m.Entries = append(m.Entries, Entry{Key: keys[i], Label: label, Values: v})
		sampleIDs = append(sampleIDs, rows[i].id)
		counts[label]++
	}
	m.Values, m.Alpha, m.Beta = ValuesPropagated, PropagatedAlpha, PropagatedBeta
	if m.Method == MethodTip {
		m.Alpha = PropagatedAlphaLabels
	}
	return sampleIDs, slices.Max(counts), nil
}

// refreshFeatures recomputes the features of samples stored under another feature key (another model or
// block choice) and stores them, so the next build reuses them.
func (s *Service) refreshFeatures(ctx context.Context, rows []sampleRow) error {
	var stale []int
	for i, r := range rows {
		if r.key != s.z.Key() {
			stale = append(stale, i)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	canvases := make([][]uint8, len(stale))
	for j, i := range stale {
		canvases[j] = rows[i].pixels
	}
	feats, err := s.z.Canvases(ctx, canvases)
	if err != nil {
		return err
	}
	upd := make([]sampleRow, len(stale))
	for j, i := range stale {
		rows[i].key, rows[i].features = s.z.Key(), feats[j]
		upd[j] = rows[i]
	}
	return s.st.updateFeatures(ctx, upd)
}

// collectionHead makes the zero-shot head of a collection: the model's own prototype for each label it
// can draw, else the mean of the samples labelled with it.
func (s *Service) collectionHead(ctx context.Context, c *cachet.Collection, rows []sampleRow) (*Head, error) {
	raw := make([][]float64, len(c.Labels))
	for k, l := range c.Labels {
		p, ok, err := s.prototype(ctx, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			var fs [][]float32
			for _, r := range rows {
				if r.label != nil && *r.label == k {
					fs = append(fs, r.features)
				}
			}
			if len(fs) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument,
					"label %q: the model cannot draw it (no zero-shot prototype) and no sample is labelled with it; label some samples %q", l, l)
			}
			p = Mean(fs)
		}
		raw[k] = p
	}
	return NewHead(c.Labels, raw, s.cfg.Center)
}
