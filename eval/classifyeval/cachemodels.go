package classifyeval

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/scene"
)

// The cache-model methods: TFUP over the test images, Tip-Adapter over labelled training images, each
// built through the service and scored on the test features.

// unlabelled is the label list of n samples without labels (AddCanvases's −1).
func unlabelled(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	return out
}

// classifyAll runs the collection's cache model over feats in request-sized chunks.
func classifyAll(ctx context.Context, svc *classify.Service, id string, feats [][]float32, chunk int) ([]classify.Scores, error) {
	var out []classify.Scores
	for i := 0; i < len(feats); i += chunk {
		_, s, err := svc.ClassifyFeatures(ctx, id, feats[i:min(i+chunk, len(feats))], 1)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

// tfup builds a TFUP collection over the test images (unlabelled, as in the paper) and scores them.
func (r *Report) tfup(ctx context.Context, svc *classify.Service, canvases [][]uint8, labels []int, feats [][]float32, progress io.Writer) (string, error) {
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: fmt.Sprintf("eval-tfup-%s-%d", r.ModelID, time.Now().UnixNano()), Labels: scene.ClassNames[:]})
	if err != nil {
		return "", err
	}
	ids, err := svc.AddCanvases(ctx, col.ID, canvases, unlabelled(len(canvases)), feats)
	if err != nil {
		return col.ID, err
	}
	fmt.Fprintf(progress, "eval classify: building TFUP over %d unlabelled test images (reference selection, unwhitened)\n", len(canvases))
	off := false
	reference := cachet.BuildRequest{Method: string(classify.MethodTFUP), Whiten: &off, Propagate: &off}
	built, acc, err := buildAndScore(ctx, svc, col.ID, reference, labels, feats)
	if err != nil {
		return col.ID, err
	}
	r.add("TFUP without whitening (the reference code's space)", acc, len(feats),
		fmt.Sprintf("K = %d per class, α = %g, β = %g", built.Model.PerClass, built.Alpha, built.Beta))
	if err := r.tuned(ctx, svc, col.ID, "TFUP without whitening", labels, feats); err != nil {
		return col.ID, err
	}
	reference.Whiten = nil
	if built, acc, err = buildAndScore(ctx, svc, col.ID, reference, labels, feats); err != nil {
		return col.ID, err
	}
	r.add("TFUP, whitened (reference selection and residual)", acc, len(feats),
		fmt.Sprintf("K = %d per class, α = %g, β = %g, whitening rank %d; build %.1f s", built.Model.PerClass, built.Alpha, built.Beta, built.Model.Whitening, built.Model.BuildSeconds))
	if err := r.tuned(ctx, svc, col.ID, "TFUP, whitened", labels, feats); err != nil {
		return col.ID, err
	}
	m, err := svc.ActiveModel(ctx, col.ID)
	if err != nil {
		return col.ID, err
	}
	if m.Head.Basis != nil { // what the whitened space alone gives
		head := *m
		head.Entries, head.Alpha = nil, 0
		r.add("zero-shot in the pool's whitened space (no cache)", scoreLocal(&head, feats, labels), len(feats),
			fmt.Sprintf("%d directions of the test images' features, power %g", len(m.Head.Basis), classify.WhitenPower))
	}
	// The default last: the latency run below times it.
	fmt.Fprintf(progress, "eval classify: building TFUP with label propagation (the default)\n")
	if built, acc, err = buildAndScore(ctx, svc, col.ID, cachet.BuildRequest{Method: string(classify.MethodTFUP)}, labels, feats); err != nil {
		return col.ID, err
	}
	entries, err := svc.Entries(ctx, col.ID)
	if err != nil {
		return col.ID, err
	}
	truth := make(map[int64]int, len(ids))
	for i, id := range ids {
		truth[id] = labels[i]
	}
	right := 0
	for _, e := range entries {
		if truth[e.SampleID] == e.Label {
			right++
		}
	}
	r.Pseudo = PseudoLabels{Entries: len(entries), PerClass: built.Model.PerClass, Values: built.Model.Values, Accuracy: float64(right) / float64(max(1, len(entries)))}
	r.add("TFUP (test images as the unlabelled pool), the default: "+cacheKind(built.Model), acc, len(feats), modelNote(built))
	return col.ID, nil
}

// cacheKind names how a built model's cache answers.
func cacheKind(m *cachet.CacheModelInfo) string {
	if m.Values == string(classify.ValuesPropagated) {
		return "label propagation"
	}
	return "reference selection"
}

// modelNote describes a built model's cache for a report row.
func modelNote(c *cachet.Collection) string {
	return fmt.Sprintf("%d entries, %s values, α = %g, β = %g, whitening rank %d; build %.1f s",
		c.Model.Entries, c.Model.Values, c.Model.Alpha, c.Model.Beta, c.Model.Whitening, c.Model.BuildSeconds)
}

// tip builds a Tip-Adapter collection from Shots labelled training images per class and scores the test
// images.
func (r *Report) tip(ctx context.Context, svc *classify.Service, train *dataset.Set, testCanvases [][]uint8, labels []int, feats [][]float32, progress io.Writer) error {
	shots := r.cfg.Shots
	col, nShots, err := r.shotCollection(ctx, svc, train, r.cfg.Seed)
	if err != nil {
		return err
	}
	defer func() { _ = svc.DeleteCollection(context.WithoutCancel(ctx), col.ID) }()
	fmt.Fprintf(progress, "eval classify: building %d-shot Tip-Adapter\n", shots)
	built, acc, err := buildAndScore(ctx, svc, col.ID, cachet.BuildRequest{Method: string(classify.MethodTip)}, labels, feats)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%d-shot Tip-Adapter", shots)
	r.add(name, acc, len(feats),
		fmt.Sprintf("%d labelled training images (seed %d), α = %g, β = %g", nShots, r.cfg.Seed, built.Alpha, built.Beta))
	if err := r.tuned(ctx, svc, col.ID, name, labels, feats); err != nil {
		return err
	}
	// The same keys with their votes solved (classify.ValuesSolved).
	solved := cachet.BuildRequest{Method: string(classify.MethodTip), Values: string(classify.ValuesSolved)}
	if built, acc, err = buildAndScore(ctx, svc, col.ID, solved, labels, feats); err != nil {
		return err
	}
	r.add(name+", solved values", acc, len(feats),
		fmt.Sprintf("α = %g, β = %g, λ = %g", built.Alpha, built.Beta, built.Model.Lambda))
	if err := r.tuned(ctx, svc, col.ID, name+", solved values", labels, feats); err != nil {
		return err
	}
	// What a user gets without held-out data: α, β, λ by leave-one-out on the 160 labelled keys.
	solved.Tune = true
	if built, acc, err = buildAndScore(ctx, svc, col.ID, solved, labels, feats); err != nil {
		return err
	}
	r.add(name+", solved values, tuned at build", acc, len(feats),
		fmt.Sprintf("α = %g, β = %g, λ = %g by leave-one-out on the labelled keys", built.Model.Alpha, built.Model.Beta, built.Model.Lambda))
	// Transductive: the test images join as unlabelled samples. The keys stay the labelled ones; the
	// whitened space is fitted over every sample.
	if nShots+len(testCanvases) < classify.MinWhitenSamples {
		return nil
	}
	if _, err := svc.AddCanvases(ctx, col.ID, testCanvases, unlabelled(len(testCanvases)), feats); err != nil {
		return err
	}
	on := true
	solved.Whiten = &on
	if built, acc, err = buildAndScore(ctx, svc, col.ID, solved, labels, feats); err != nil {
		return err
	}
	r.add(name+", solved values, tuned at build, whitened over the test images (unlabelled)", acc, len(feats),
		fmt.Sprintf("α = %g, β = %g, λ = %g by leave-one-out on the labelled keys; whitening rank %d", built.Model.Alpha, built.Model.Beta, built.Model.Lambda, built.Model.Whitening))
	if err := r.tuned(ctx, svc, col.ID, name+", solved values, whitened over the test images", labels, feats); err != nil {
		return err
	}
	// The default build of labelled plus unlabelled samples: the labels propagate over the test images' graph.
	built, scores, err := buildAndClassify(ctx, svc, col.ID, cachet.BuildRequest{}, feats)
	if err != nil {
		return err
	}
	name += " with the test images as unlabelled samples, the default: " + cacheKind(built.Model)
	r.add(name, accuracy(scores, labels), len(feats), modelNote(built))
	// One draw of 160 images moves the result by about a point: the same build over further draws.
	draws := []drawResult{r.drawResult(scores, labels)}
	for d := 1; d < r.cfg.ShotDraws; d++ {
		fmt.Fprintf(progress, "eval classify: %d-shot draw %d of %d (the default build)\n", shots, d+1, r.cfg.ShotDraws)
		scores, err := r.drawAndClassify(ctx, svc, train, r.cfg.Seed+int64(d), testCanvases, feats)
		if err != nil {
			return err
		}
		draws = append(draws, r.drawResult(scores, labels))
	}
	if len(draws) > 1 {
		r.addDraws(fmt.Sprintf("%s, mean of %d draws of the labelled images", name, len(draws)), len(feats), draws,
			func(d drawResult) float64 { return d.acc })
	}
	if len(r.diffErrs) > 0 {
		n := len(r.diffErrs)
		r.addDraws(fmt.Sprintf("%s, first %d test images, mean of %d draws", name, n, len(draws)), n, draws,
			func(d drawResult) float64 { return d.accHead })
		r.addDraws(fmt.Sprintf("%s, plus the diffusion classifier at weight %g, first %d test images, mean of %d draws", name, classify.DiffusionRerankWeight, n, len(draws)), n, draws,
			func(d drawResult) float64 { return d.accRerank })
	}
	return nil
}

// drawResult is one draw's default build: its accuracy, and on the images the diffusion classifier saw its
// accuracy alone and with the diffusion classifier's logits added.
type drawResult struct{ acc, accHead, accRerank float64 }

func (r *Report) drawResult(scores []classify.Scores, labels []int) drawResult {
	d := drawResult{acc: accuracy(scores, labels)}
	n := len(r.diffErrs)
	if n == 0 {
		return d
	}
	rerank := 0
	for i, errs := range r.diffErrs {
		if classify.Argmax(scores[i].WithDiffusion(errs, classify.DiffusionRerankWeight).Logits) == labels[i] {
			rerank++
		}
	}
	d.accHead, d.accRerank = accuracy(scores[:n], labels), float64(rerank)/float64(n)
	return d
}

// addDraws reports the mean of one number over the draws, each draw's value in the note.
func (r *Report) addDraws(name string, images int, draws []drawResult, of func(drawResult) float64) {
	accs := make([]float64, len(draws))
	parts := make([]string, len(draws))
	for i, d := range draws {
		accs[i] = of(d)
		parts[i] = pct(accs[i])
	}
	if len(accs) == 1 {
		r.add(name, accs[0], images, fmt.Sprintf("seed %d", r.cfg.Seed))
		return
	}
	mean, sd := stat.MeanStdDev(accs, nil)
	r.add(name, mean, images, fmt.Sprintf("seeds %d…%d: %s; sd %.1f points", r.cfg.Seed, r.cfg.Seed+int64(len(accs)-1), strings.Join(parts, ", "), 100*sd))
}

// shotCollection creates a collection holding one draw (seed) of Shots labelled training images per class,
// never from the last Validation items (they tune α and β), and returns it with the number of images. The
// caller deletes it.
func (r *Report) shotCollection(ctx context.Context, svc *classify.Service, train *dataset.Set, seed int64) (*cachet.Collection, int, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 16))
	var idx []int
	count := make([]int, scene.NumClasses)
	for _, i := range rng.Perm(train.Len() - r.cfg.Validation) {
		if c := train.Label(i); count[c] < r.cfg.Shots {
			count[c]++
			idx = append(idx, i)
		}
	}
	canvases, trainLabels, err := canvasesOf(train, idx)
	if err != nil {
		return nil, 0, err
	}
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: fmt.Sprintf("eval-tip-%s-%d-%d", r.ModelID, seed, time.Now().UnixNano()), Labels: scene.ClassNames[:]})
	if err != nil {
		return nil, 0, err
	}
	if _, err := svc.AddCanvases(ctx, col.ID, canvases, trainLabels, nil); err != nil {
		_ = svc.DeleteCollection(context.WithoutCancel(ctx), col.ID)
		return nil, 0, err
	}
	return col, len(idx), nil
}

// drawAndClassify builds the default model of one draw of labelled training images plus the test images
// (unlabelled) in a collection of its own and returns its test scores.
func (r *Report) drawAndClassify(ctx context.Context, svc *classify.Service, train *dataset.Set, seed int64, testCanvases [][]uint8, feats [][]float32) ([]classify.Scores, error) {
	col, _, err := r.shotCollection(ctx, svc, train, seed)
	if err != nil {
		return nil, err
	}
	defer func() { _ = svc.DeleteCollection(context.WithoutCancel(ctx), col.ID) }()
	if _, err := svc.AddCanvases(ctx, col.ID, testCanvases, unlabelled(len(testCanvases)), feats); err != nil {
		return nil, err
	}
	_, scores, err := buildAndClassify(ctx, svc, col.ID, cachet.BuildRequest{}, feats)
	return scores, err
}

// buildAndScore builds collection id as req asks and returns it with the test accuracy of its new model.
func buildAndScore(ctx context.Context, svc *classify.Service, id string, req cachet.BuildRequest, labels []int, feats [][]float32) (*cachet.Collection, float64, error) {
	built, scores, err := buildAndClassify(ctx, svc, id, req, feats)
	if err != nil {
		return nil, 0, err
	}
	return built, accuracy(scores, labels), nil
}

// buildAndClassify builds collection id as req asks and returns it with its new model's test scores.
func buildAndClassify(ctx context.Context, svc *classify.Service, id string, req cachet.BuildRequest, feats [][]float32) (*cachet.Collection, []classify.Scores, error) {
	built, err := svc.Build(ctx, id, req)
	if err != nil {
		return nil, nil, err
	}
	scores, err := classifyAll(ctx, svc, id, feats, 256)
	if err != nil {
		return nil, nil, err
	}
	return built, scores, nil
}

// tuned reports the collection's cache model with α and β (and, for solved values, λ) chosen on the
// validation images (the last Validation training items, never a test image): the per-collection knobs,
// searched as Tip-Adapter does.
func (r *Report) tuned(ctx context.Context, svc *classify.Service, id, name string, labels []int, feats [][]float32) error {
	if r.val == nil {
		return nil
	}
	m, err := svc.ActiveModel(ctx, id)
	if err != nil {
		return err
	}
	best, bestAcc, err := tune(m, r.val)
	if err != nil {
		return err
	}
	knobs := fmt.Sprintf("α = %g, β = %g", best.Alpha, best.Beta)
	if best.Values == classify.ValuesSolved {
		knobs += fmt.Sprintf(", λ = %g", best.Lambda)
	}
	r.add(name+", tuned", scoreLocal(&best, feats, labels), len(feats),
		fmt.Sprintf("%s chosen on %d held-out training images (%.1f %% there)", knobs, len(r.val.labels), 100*bestAcc))
	return nil
}

// scoreLocal is the service's scoring over the whole cache (what pgvector returns when the cache is no
// larger than the neighbour count), without the round trips.
func scoreLocal(m *classify.Model, feats [][]float32, labels []int) float64 {
	correct := 0
	for i, raw := range feats {
		if classify.Argmax(m.Score(m.Head.Project(raw), nil).Logits) == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(feats))
}

// validation holds the held-out training images' features for tuning α and β.
type validation struct {
	feats  [][]float32
	labels []int
}

// tfupDefault scores the default TFUP build over canvases as its unlabelled pool.
func (r *Report) tfupDefault(ctx context.Context, svc *classify.Service, canvases [][]uint8, labels []int, feats [][]float32) (float64, error) {
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: fmt.Sprintf("eval-tfup-%s-%d", r.ModelID, time.Now().UnixNano()), Labels: scene.ClassNames[:]})
	if err != nil {
		return 0, err
	}
	defer func() { _ = svc.DeleteCollection(context.WithoutCancel(ctx), col.ID) }()
	if _, err := svc.AddCanvases(ctx, col.ID, canvases, unlabelled(len(canvases)), feats); err != nil {
		return 0, err
	}
	_, acc, err := buildAndScore(ctx, svc, col.ID, cachet.BuildRequest{Method: string(classify.MethodTFUP)}, labels, feats)
	return acc, err
}
