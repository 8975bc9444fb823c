package acceptance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/testenv"
)

// jobServices are service flags on a database of the test's own: a job left queued must not reach another
// test's worker.
func jobServices(t *testing.T) (string, []string) {
	t.Helper()
	s3 := testenv.S3(t)
	db := testenv.PrivateDatabaseURL(t)
	return db, []string{"--database-url", db,
		"--s3-endpoint", s3.Endpoint, "--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey, "--s3-bucket", s3.Bucket}
}

func decodeJob(t *testing.T, a answer) cachet.Job {
	t.Helper()
	var j cachet.Job
	if err := json.Unmarshal(a.body, &j); err != nil || j.ID == "" {
		t.Fatalf("answer %d is not a job: %v: %s", a.status, err, a.body)
	}
	return j
}

// A burst of ten times what the queue holds, at an API replica with no worker (so nothing drains): the
// queue's bound is accepted, the rest answered 429 with Retry-After, nothing else; the replica's memory
// stays put; the accepted jobs cancel at once.
func TestOverloadBurstIsRefused(t *testing.T) {
	const bound, burst = 8, 80
	_, services := jobServices(t)
	srv := startServer(t, buildBinary(t), append(services, "--worker", "none", "--max-queued", fmt.Sprint(bound))...)
	base := "http://" + srv.addr
	before := rssBytes(t, srv.cmd.Process.Pid)

	answers := make([]answer, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"prompt": "a large boot", "n": 16, "steps": 1000, "seed": %d, "async": true}`, i)
			answers[i] = send(t, http.MethodPost, base+"/v1/generate", "application/json", body, 30*time.Second)
		})
	}
	wg.Wait()
	var accepted []string
	var refused []time.Duration
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Fatalf("request %d: %v", i, a.err)
		case a.status == http.StatusAccepted:
			accepted = append(accepted, decodeJob(t, a).ID)
		case a.status == http.StatusTooManyRequests && a.retryAfter != "":
			var e struct {
				Error cachet.Error `json:"error"`
			}
			if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code != cachet.CodeResourceExhausted {
				t.Errorf("request %d: 429 without the resource_exhausted envelope: %s", i, a.body)
			}
			refused = append(refused, a.took)
		default:
			t.Errorf("request %d: %d (Retry-After %q) %s", i, a.status, a.retryAfter, a.body)
		}
	}
	if len(accepted) != bound || len(refused) != burst-bound {
		t.Fatalf("%d accepted and %d refused; want %d and %d", len(accepted), len(refused), bound, burst-bound)
	}
	slices.Sort(refused)
	after := rssBytes(t, srv.cmd.Process.Pid)
	// Latency is reported, not asserted: this machine's timing is shared with other tests.
	t.Logf("%d × 429: p50 %v, max %v; RSS %d → %d MiB", len(refused), refused[len(refused)/2], refused[len(refused)-1], before>>20, after>>20)
	if after-before > 64<<20 {
		t.Errorf("RSS grew %d MiB over the burst; refused work must not be held", (after-before)>>20)
	}
	for _, id := range accepted {
		a := send(t, http.MethodDelete, base+"/v1/jobs/"+id, "", nil, 30*time.Second)
		if a.status != http.StatusOK || decodeJob(t, a).State != cachet.JobCanceled {
			t.Errorf("canceling queued job %s: %d %s", id, a.status, a.body)
		}
	}
	// The queue has room again (once the replica's depth snapshot, at most 0.5 s old, has seen the cancels).
	var a answer
	for range 10 {
		a = send(t, http.MethodPost, base+"/v1/generate", "application/json", []byte(`{"prompt": "a large boot", "async": true}`), 30*time.Second)
		if a.status != http.StatusTooManyRequests {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if a.status != http.StatusAccepted {
		t.Errorf("after the cancels: %d %s", a.status, a.body)
	}
}

// A worker SIGKILLed in the middle of a job: another worker takes the job once --rescue-after has passed,
// and the job ends with one result — one stored generation of its images, not two.
func TestKilledWorkersJobCompletesElsewhere(t *testing.T) {
	dbURL, services := jobServices(t)
	bin := buildBinary(t)
	// The second attempt must finish within one attempt's limit: 200 steps took 21 s on a host without
	// AVX-512, so the limit leaves room for slower hosts.
	jobFlags := []string{"--rescue-after", "60s"}
	srv := startServer(t, bin, append(append(services, "--worker", "none"), jobFlags...)...)
	base := "http://" + srv.addr
	first := startWorker(t, bin, append(services, jobFlags...)...)

	api := apiClient(t, base, "") // the client generated from the contract; this server runs without keys
	sub, err := api.GenerateWithBodyWithResponse(context.Background(), "application/json",
		strings.NewReader(`{"prompt": "a small bag on the left", "n": 2, "steps": 200, "seed": 3, "output": "url", "async": true}`))
	if err != nil || sub.JSON202 == nil || sub.JSON202.Id == nil {
		t.Fatalf("submitting: %v %d %s", err, sub.StatusCode(), sub.Body)
	}
	id := *sub.JSON202.Id
	getJob := func() cachet.Job {
		t.Helper()
		r, err := api.GetJobWithResponse(context.Background(), id)
		if err != nil || r.JSON200 == nil {
			t.Fatalf("reading job %s: %v %s", id, err, r.Body)
		}
		var j cachet.Job
		if err := json.Unmarshal(r.Body, &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j := getJob()
		if j.State == cachet.JobRunning && j.Progress.Step >= 5 {
			break
		}
		if j.State.Done() || time.Now().After(deadline) {
			t.Fatalf("job %s is %s at step %d; want it running", id, j.State, j.Progress.Step)
		}
		time.Sleep(100 * time.Millisecond)
	}
	first.kill(t)
	startWorker(t, bin, append(services, jobFlags...)...)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var j cachet.Job
	for {
		j = getJob()
		if j.State.Done() || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if j.State != cachet.JobSucceeded || j.Attempt != 2 {
		t.Fatalf("the killed worker's job: %s on attempt %d (%+v); want succeeded on attempt 2", j.State, j.Attempt, j.Error)
	}
	var res cachet.GenerateResult
	if err := json.Unmarshal(j.Result, &res); err != nil || len(res.Images) != 2 {
		t.Fatalf("result: %v %s", err, j.Result)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM generations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("%d stored generation rows after the rerun; want the job's 2 images once", rows)
	}
}
