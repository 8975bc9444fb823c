package subjects_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/images/imagestest"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/storage"
	"github.com/cachetlab/cachet/subjects"
)

func uploads(t *testing.T, seeds ...int) []cachet.Upload {
	var out []cachet.Upload
	for i, s := range seeds {
		data := imagestest.PNG(t, imagestest.Pattern(28, 28, s))
		if i%2 == 1 {
			data = imagestest.JPEG(t, imagestest.Pattern(64, 48, s))
		}
		out = append(out, cachet.Upload{Filename: fmt.Sprintf("ref%d", i), Data: data})
	}
	return out
}

func TestSubjectLifecycle(t *testing.T) {
	ctx := context.Background()
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	svc := subjects.New(db, objects, ext, subjects.Options{})
	name := fmt.Sprintf("lifecycle-%d", time.Now().UnixNano())

	a, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: name + "-a", Class: "Sneaker", Images: uploads(t, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != cachet.SubjectReady || a.Class != "sneaker" || len(a.Refs) != 2 || a.Cache == nil || a.Cache.Model != ext.ModelID() {
		t.Fatalf("created subject: %+v", a)
	}
	for n, r := range a.Refs {
		if r.Key != fmt.Sprintf("subjects/%s/refs/%d.png", a.ID, n) {
			t.Fatalf("ref %d stored under %s", n, r.Key)
		}
		if _, err := objects.Stat(ctx, r.Key); err != nil {
			t.Fatal(err)
		}
	}
	// The stored cache decodes for this model only, with both references along tokens.
	data, _, err := objects.GetBytes(ctx, a.Cache.Key)
	if err != nil {
		t.Fatal(err)
	}
	f, err := featurecache.Decode(data, ext.ModelID())
	if err != nil || f.Tokens != 2*64 || len(f.Blocks) != 6 || f.Width != 256 {
		t.Fatalf("stored cache: %v, %+v", err, f)
	}
	if _, err := featurecache.Decode(data, "another-model"); cachet.CodeOf(err) != cachet.CodeConflict {
		t.Fatalf("another model's decode = %v", err)
	}
	got, hit, err := svc.Features(ctx, a.ID, ext.ModelID())
	if err != nil || !hit || got.Tokens != 128 {
		t.Fatalf("Features = hit %v, err %v", hit, err)
	}
	if _, _, err := svc.Features(ctx, a.ID, "another-model"); cachet.CodeOf(err) != cachet.CodeConflict {
		t.Fatalf("Features for another model = %v", err)
	}

	// b has the same images as a (nearest, similarity ≈ 1); c has other ones.
	b, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: name + "-b", Images: uploads(t, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: name + "-c", Images: uploads(t, 9)})
	if err != nil {
		t.Fatal(err)
	}
	near, err := svc.SimilarSubjects(ctx, a.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(near) != 2 || near[0].ID != b.ID || near[0].Similarity < 0.9999 || near[1].ID != c.ID || near[1].Similarity >= near[0].Similarity {
		t.Fatalf("similar to a: %+v", near)
	}
	list, err := svc.Subjects(ctx, cachet.SubjectQuery{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range list {
		seen[s.ID] = true
	}
	if !seen[a.ID] || !seen[b.ID] || !seen[c.ID] {
		t.Fatal("list misses the new subjects")
	}

	if err := svc.DeleteSubject(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Subject(ctx, a.ID); cachet.CodeOf(err) != cachet.CodeNotFound {
		t.Fatalf("Get after delete = %v", err)
	}
	if left, err := objects.List(ctx, "subjects/"+a.ID+"/"); err != nil || len(left) != 0 {
		t.Fatalf("objects left after delete: %v %v", left, err)
	}
	if _, _, err := svc.Features(ctx, a.ID, ext.ModelID()); cachet.CodeOf(err) != cachet.CodeNotFound {
		t.Fatalf("Features after delete = %v", err)
	}
	if err := svc.DeleteSubject(ctx, a.ID); cachet.CodeOf(err) != cachet.CodeNotFound {
		t.Fatalf("second delete = %v", err)
	}
}

// cancelingExtractor cancels the request just as extraction starts: the failure lands after the
// originals are stored.
type cancelingExtractor struct {
	subjects.Extractor
	cancel context.CancelFunc
}

func (c cancelingExtractor) Extract(ctx context.Context, images [][]float32) ([]*featurecache.Features, error) {
	c.cancel()
	return c.Extractor.Extract(ctx, images)
}

func TestFailureMidwayLeavesNoHalfSubject(t *testing.T) {
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	name := fmt.Sprintf("midway-%d", time.Now().UnixNano())

	t.Run("extraction fails: failed, then retried to ready", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		failing := subjects.New(db, objects, cancelingExtractor{ext, cancel}, subjects.Options{})
		_, err := failing.CreateSubject(ctx, cachet.NewSubject{Name: name + "-x", Images: uploads(t, 3)})
		if cachet.CodeOf(err) != cachet.CodeCanceled {
			t.Fatalf("Create = %v, want canceled", err)
		}
		svc := subjects.New(db, objects, ext, subjects.Options{})
		failed := findByName(t, svc, name+"-x")
		if failed.Status != cachet.SubjectFailed || failed.Error == "" || failed.Cache != nil {
			t.Fatalf("after a failed extraction: %+v", failed)
		}
		if _, _, err := svc.Features(context.Background(), failed.ID, ext.ModelID()); cachet.CodeOf(err) != cachet.CodeConflict {
			t.Fatalf("Features of a failed subject = %v", err)
		}
		ready, err := svc.RetrySubject(context.Background(), failed.ID)
		if err != nil || ready.Status != cachet.SubjectReady {
			t.Fatalf("Retry = %+v, %v", ready, err)
		}
		if _, err := svc.RetrySubject(context.Background(), failed.ID); cachet.CodeOf(err) != cachet.CodeConflict {
			t.Fatalf("retrying a ready subject = %v", err)
		}
	})

	t.Run("storing originals fails: nothing left", func(t *testing.T) {
		ctx := context.Background()
		cfg := testenv.S3(t)
		gone, err := storage.OpenObjects(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := gone.RemoveBucket(ctx); err != nil {
			t.Fatal(err)
		}
		svc := subjects.New(db, gone, ext, subjects.Options{})
		if _, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: name + "-y", Images: uploads(t, 4)}); err == nil {
			t.Fatal("Create succeeded without a bucket")
		}
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM subjects WHERE name = $1`, name+"-y").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows left (err %v)", n, err)
		}
	})

	t.Run("bad input writes nothing", func(t *testing.T) {
		svc := subjects.New(db, objects, ext, subjects.Options{})
		tests := []struct {
			name string
			in   cachet.NewSubject
			want cachet.Code
		}{
			{"no name", cachet.NewSubject{Images: uploads(t, 1)}, cachet.CodeInvalidArgument},
			{"bad class", cachet.NewSubject{Name: name + "-z", Class: "spaceship", Images: uploads(t, 1)}, cachet.CodeInvalidArgument},
			{"no images", cachet.NewSubject{Name: name + "-z"}, cachet.CodeInvalidArgument},
			{"not an image", cachet.NewSubject{Name: name + "-z", Images: []cachet.Upload{{Data: []byte("GIF89a....")}}}, cachet.CodeUnsupportedMedia},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := svc.CreateSubject(context.Background(), tc.in); cachet.CodeOf(err) != tc.want {
					t.Fatalf("Create = %v, want %s", err, tc.want)
				}
			})
		}
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM subjects WHERE name = $1`, name+"-z").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows written by bad input (err %v)", n, err)
		}
	})

	t.Run("no model: 503", func(t *testing.T) {
		svc := subjects.New(db, objects, nil, subjects.Options{})
		if _, err := svc.CreateSubject(context.Background(), cachet.NewSubject{Name: name, Images: uploads(t, 1)}); cachet.CodeOf(err) != cachet.CodeUnavailable {
			t.Fatalf("Create without a model = %v", err)
		}
	})
}

func findByName(t *testing.T, svc *subjects.Service, name string) *cachet.Subject {
	t.Helper()
	list, err := svc.Subjects(context.Background(), cachet.SubjectQuery{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no subject named %s", name)
	return nil
}

// A subject extracted by one model is refused by another until it is retried, which re-extracts it from
// its stored originals.
func TestRetryReextractsForANewModel(t *testing.T) {
	ctx := context.Background()
	db, objects := testenv.DB(t), testenv.Objects(t)
	oldModel, newModel := randomExtractor(t), randomExtractor(t)
	sub, err := subjects.New(db, objects, oldModel, subjects.Options{}).CreateSubject(ctx,
		cachet.NewSubject{Name: fmt.Sprintf("reextract-%d", time.Now().UnixNano()), Images: uploads(t, 5, 6)})
	if err != nil {
		t.Fatal(err)
	}
	svc := subjects.New(db, objects, newModel, subjects.Options{})
	if _, _, err := svc.Features(ctx, sub.ID, newModel.ModelID()); cachet.CodeOf(err) != cachet.CodeConflict || !strings.Contains(err.Error(), "/retry") {
		t.Fatalf("Features under a new model = %v", err)
	}
	again, err := svc.RetrySubject(ctx, sub.ID)
	if err != nil || again.Status != cachet.SubjectReady || again.Cache.Model != newModel.ModelID() || len(again.Refs) != 2 {
		t.Fatalf("RetrySubject = %+v, %v", again, err)
	}
	if f, _, err := svc.Features(ctx, sub.ID, newModel.ModelID()); err != nil || f.Model != newModel.ModelID() || f.Tokens != 128 {
		t.Fatalf("Features after the retry: %v", err)
	}
}

// A subject built by a two-view extractor stores both views of every reference and says so. A ready
// subject extracted with one view is retried when the server's extraction reads two (new adapters), and
// not retried while it matches.
func TestSubjectViews(t *testing.T) {
	ctx := context.Background()
	db, objects := testenv.DB(t), testenv.Objects(t)
	ex := randomExtractors(t, 1, 2)
	one := subjects.New(db, objects, ex[0], subjects.Options{})
	two := subjects.New(db, objects, ex[1], subjects.Options{})
	s, err := one.CreateSubject(ctx, cachet.NewSubject{Name: fmt.Sprintf("views-%d", time.Now().UnixNano()), Images: uploads(t, 3, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = one.DeleteSubject(context.WithoutCancel(ctx), s.ID) })
	if s.Cache == nil || s.Cache.Views != 1 {
		t.Fatalf("created cache: %+v", s.Cache)
	}
	if _, err := one.RetrySubject(ctx, s.ID); cachet.CodeOf(err) != cachet.CodeConflict {
		t.Fatalf("retrying a subject that matches the extraction = %v, want a conflict", err)
	}
	if _, err := two.RetrySubject(ctx, s.ID); err != nil {
		t.Fatalf("retrying a one-view subject with a two-view extractor: %v", err)
	}
	again, err := two.Subject(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != cachet.SubjectReady || again.Cache == nil || again.Cache.Views != 2 {
		t.Fatalf("retried subject: %s, cache %+v", again.Status, again.Cache)
	}
	data, _, err := objects.GetBytes(ctx, again.Cache.Key)
	if err != nil {
		t.Fatal(err)
	}
	f, err := featurecache.Decode(data, "")
	if err != nil || f.Views != 2 || f.Tokens != 2*2*64 {
		t.Fatalf("stored cache: %v, views %d, %d tokens", err, f.Views, f.Tokens)
	}
}
