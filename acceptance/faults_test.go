package acceptance_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

var faults = flag.Int("faults", 6, "faults TestFaultInjection injects (each stops Postgres or the S3 server during a request)")

// answer is one HTTP exchange.
type answer struct {
	status     int
	retryAfter string
	body       []byte
	took       time.Duration
	err        error
}

func send(t *testing.T, method, url, contentType string, body []byte, timeout time.Duration) answer {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err == nil {
		checkContract(t, method, url, resp.StatusCode, resp.Header, b)
	}
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b, took: took, err: err}
}

func subjectUpload(t *testing.T, name string, files ...string) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("name", name); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("images", f)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(readExample(t, filepath.Join("docs", "examples", f))) //nolint:errcheck // a bytes.Buffer
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// TestFaultInjection stops Postgres or the S3 server (crash-style) while subjects are created, images are
// generated into the store and a collection is built, against the real binary. Meanwhile requests that need
// the stopped service must answer 503 with Retry-After within 2 s; once it is back, serve recovers without a
// restart, no subject is ready without its cache object and every reference, and after the sweeper ran no
// object is left without its row.
func TestFaultInjection(t *testing.T) {
	svc := startPrivateServices(t)
	bucket := "faults"
	srv := startServer(t, buildBinary(t), "--database-url", svc.url("cachet"),
		"--s3-endpoint", svc.s3Addr, "--s3-access-key", "faults", "--s3-secret-key", "faults-secret-key", "--s3-bucket", bucket,
		"--sweep-interval", "1s", "--stale-after", "2s", "--orphan-after", "1s")
	base := "http://" + srv.addr

	// A collection to rebuild, with labels the model cannot draw (prototypes from its samples, no sampling).
	img := func(name string) string {
		return `"` + b64(readExample(t, filepath.Join("docs", "examples", name+".png"))) + `"`
	}
	a := send(t, "POST", base+"/v1/collections", "application/json", []byte(`{"name": "faults", "labels": ["first", "second"]}`), 30*time.Second)
	var col cachet.Collection
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &col) != nil {
		t.Fatalf("creating the collection: %d %s %v", a.status, a.body, a.err)
	}
	samples := `{"samples": [{"image": ` + img("coat") + `, "label": "first"}, {"image": ` + img("bag") + `, "label": "second"}, {"image": ` + img("coat2") + `}]}`
	if a = send(t, "POST", base+"/v1/collections/"+col.ID+"/samples", "application/json", []byte(samples), 60*time.Second); a.status != http.StatusOK {
		t.Fatalf("adding samples: %d %s %v", a.status, a.body, a.err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	ready := map[string]bool{} // subjects a 201 promised
	outcomes := map[string]int{}
	for i := range *faults {
		kind := []string{"subject", "generate", "build"}[i%3]
		target := []string{"postgres", "s3"}[(i/3)%2]
		op := make(chan answer, 1)
		go func() {
			switch kind {
			case "subject":
				ct, body := subjectUpload(t, fmt.Sprintf("fault-%d", i), "coat.png", "coat2.png")
				op <- send(t, "POST", base+"/v1/subjects", ct, body, time.Minute)
			case "generate":
				op <- send(t, "POST", base+"/v1/generate", "application/json", []byte(`{"prompt": "a large bag", "n": 2, "steps": 6, "output": "url"}`), time.Minute)
			default:
				op <- send(t, "POST", base+"/v1/collections/"+col.ID+"/build", "", nil, time.Minute)
			}
		}()
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if target == "postgres" {
			svc.stopPostgres(t)
		} else {
			svc.stopS3(t)
		}
		// A request that needs the stopped service: a fast 503 with Retry-After.
		probe := send(t, "GET", base+"/v1/subjects", "", nil, 10*time.Second)
		if target == "s3" {
			ct, body := subjectUpload(t, fmt.Sprintf("probe-%d", i), "bag.png")
			probe = send(t, "POST", base+"/v1/subjects", ct, body, 10*time.Second)
		}
		if probe.status != http.StatusServiceUnavailable || probe.retryAfter == "" || probe.took > 2*time.Second {
			t.Errorf("fault %d (%s down): a request meanwhile answered %d (Retry-After %q) in %v: %s %v",
				i, target, probe.status, probe.retryAfter, probe.took, probe.body, probe.err)
		}
		if target == "postgres" {
			svc.startPostgres(t)
		} else {
			svc.startS3(t)
		}
		res := <-op
		outcomes[fmt.Sprintf("%s/%s %d", kind, target, res.status)]++
		switch {
		case res.err != nil:
			t.Errorf("fault %d: %s while %s was down: %v", i, kind, target, res.err)
		case res.status >= 500 && res.status != http.StatusServiceUnavailable:
			t.Errorf("fault %d: %s while %s was down answered %d: %s", i, kind, target, res.status, res.body)
		case kind == "subject" && res.status == http.StatusCreated:
			var sub cachet.Subject
			if err := json.Unmarshal(res.body, &sub); err != nil || sub.Status != cachet.SubjectReady {
				t.Errorf("fault %d: a 201 with %s", i, res.body)
			}
			ready[sub.ID] = true
		}
		waitReady(t, base)
	}
	t.Logf("%d faults; outcomes: %v", *faults, outcomes)

	// After recovery: every kind of request works again, without restarting serve.
	ct, body := subjectUpload(t, "after", "coat.png")
	if a := send(t, "POST", base+"/v1/subjects", ct, body, time.Minute); a.status != http.StatusCreated {
		t.Fatalf("creating a subject after the faults: %d %s", a.status, a.body)
	}
	if a := send(t, "POST", base+"/v1/collections/"+col.ID+"/build", "", nil, time.Minute); a.status != http.StatusOK {
		t.Fatalf("building after the faults: %d %s", a.status, a.body)
	}
	time.Sleep(4 * time.Second) // past --stale-after and --orphan-after, with the sweeper running every second
	checkConsistent(t, svc.url("cachet"), svc.s3Addr, bucket, ready, base)
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if a := send(t, "GET", base+"/readyz", "", nil, 5*time.Second); a.status == http.StatusOK {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("serve did not become ready again after the service came back")
}

// checkConsistent checks the store against the rows: no subject ready without its objects, none left
// pending, every failed one retryable, every promised one ready, and no object without its row.
func checkConsistent(t *testing.T, dbURL, s3Addr, bucket string, promised map[string]bool, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	objects, err := storage.OpenObjects(ctx, cachet.S3Config{Endpoint: s3Addr, AccessKey: "faults", SecretKey: "faults-secret-key", Bucket: bucket, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT id::text, status, coalesce(cache_key, ''), coalesce(cache_sha256, ''),
		coalesce((SELECT array_agg(object_key) FROM subject_refs r WHERE r.subject_id = s.id), '{}'), ref_count FROM subjects s`)
	if err != nil {
		t.Fatal(err)
	}
	type subject struct {
		id, status, cacheKey, cacheSum string
		refs                           []string
		refCount                       int
	}
	var subs []subject
	for rows.Next() {
		var s subject
		if err := rows.Scan(&s.id, &s.status, &s.cacheKey, &s.cacheSum, &s.refs, &s.refCount); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, s := range subs {
		counts[s.status]++
		if len(s.refs) != s.refCount {
			t.Errorf("subject %s (%s) has %d of its %d references recorded", s.id, s.status, len(s.refs), s.refCount)
		}
		for _, k := range s.refs {
			if _, err := objects.Stat(ctx, k); err != nil {
				t.Errorf("subject %s (%s): reference %s: %v", s.id, s.status, k, err)
			}
		}
		switch s.status {
		case "ready":
			if st, err := objects.Stat(ctx, s.cacheKey); err != nil || st.SHA256 != s.cacheSum {
				t.Errorf("subject %s is ready without its cache object: %v", s.id, err)
			}
		case "pending":
			t.Errorf("subject %s still pending after the sweeper ran", s.id)
		case "failed": // recovers by retry
			if a := send(t, "POST", base+"/v1/subjects/"+s.id+"/retry", "", nil, time.Minute); a.status != http.StatusOK {
				t.Errorf("retrying failed subject %s: %d %s", s.id, a.status, a.body)
			}
		}
		delete(promised, s.id)
	}
	for id := range promised {
		t.Errorf("subject %s was answered 201 ready, and is gone", id)
	}
	t.Logf("subjects after the faults: %v", counts)
	// Every object belongs to a row.
	all, err := objects.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range subs {
		known[s.id] = true
	}
	var gens int
	for _, o := range all {
		switch {
		case strings.HasPrefix(o.Key, "subjects/"):
			id, _, _ := strings.Cut(strings.TrimPrefix(o.Key, "subjects/"), "/")
			if !known[id] {
				t.Errorf("orphan object %s (no subject row)", o.Key)
			}
		case strings.HasPrefix(o.Key, "generations/"):
			id := strings.TrimSuffix(strings.TrimPrefix(o.Key, "generations/"), ".png")
			var n int
			if err := db.QueryRow(ctx, `SELECT count(*) FROM generations WHERE id = $1::uuid`, id).Scan(&n); err != nil || n != 1 {
				t.Errorf("orphan object %s (no generations row): %v", o.Key, err)
			}
			gens++
		}
	}
	t.Logf("%d objects, %d generated images, all with their rows", len(all), gens)
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }
