package api_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/cachettest"
)

// jobServer is the API of a replica that queues model work on q (no worker: a test moves jobs on).
func jobServer(t *testing.T, q *cachettest.Jobs, syncWait time.Duration) *httptest.Server {
	t.Helper()
	s, err := api.New(api.Options{Generator: &cachettest.Generator{}, Subjects: cachettest.NewSubjects(), Jobs: q, SyncWait: syncWait})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestJobRoutes(t *testing.T) {
	q := &cachettest.Jobs{MaxQueued: 2}
	srv := jobServer(t, q, 50*time.Millisecond)
	runFlow(t, srv, []step{
		{"async", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large coat", "async": true}`), 202, `"state":"queued"`, map[string]string{"job": "id"}},
		{"read", "GET", "/v1/jobs/{job}", "", nil, 200, `"kind":"generate"`, nil},
		{"sync outlives its wait", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large bag"}`), 202, `"state":"queued"`, map[string]string{"second": "id"}},
		{"full queue", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large bag", "async": true}`), 429, "resource_exhausted", nil},
		{"invalid before queueing", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "", "async": true}`), 400, "prompt", nil},
		{"cancel", "DELETE", "/v1/jobs/{second}", "", nil, 200, `"state":"canceled"`, nil},
		{"cancel again", "DELETE", "/v1/jobs/{second}", "", nil, 200, `"state":"canceled"`, nil},
		{"room again", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large bag", "async": true}`), 202, `"id"`, nil},
		{"unknown", "GET", "/v1/jobs/999", "", nil, 404, "not_found", nil},
		{"not an id", "DELETE", "/v1/jobs/abc", "", nil, 404, "not_found", nil},
	})
}

func TestIdempotencyKeyHeader(t *testing.T) {
	q := &cachettest.Jobs{}
	srv := jobServer(t, q, time.Millisecond)
	post := func(key string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/generate", strings.NewReader(`{"prompt": "a large coat", "async": true}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return resp, []byte(b.String())
	}
	_, first := post("order-1")
	_, again := post("order-1")
	if string(first) != string(again) || !strings.Contains(string(first), `"id":"1"`) {
		t.Errorf("a repeated key answered %s, then %s; want the first job twice", first, again)
	}
	if resp, b := post(strings.Repeat("k", 256)); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Idempotency-Key") {
		t.Errorf("a 256-byte key: %d %s", resp.StatusCode, b)
	}
}

// A synchronous POST answers the job's result once it succeeds, and its error with the job's code.
func TestSyncAnswerIsTheJobsResult(t *testing.T) {
	q := &cachettest.Jobs{Run: func(_ context.Context, j cachet.NewJob) (any, error) {
		if j.Args.(cachet.GenerateRequest).Prompt == "a large boot" {
			return nil, cachet.Errorf(cachet.CodeDeadlineExceeded, "the job ran past its deadline")
		}
		return map[string]string{"made": "it"}, nil
	}}
	srv := jobServer(t, q, time.Second)
	runFlow(t, srv, []step{
		{"result", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large coat"}`), 200, `{"made":"it"}`, nil},
		{"error", "POST", "/v1/generate", "application/json", jsonBody(`{"prompt": "a large boot"}`), 504, "deadline_exceeded", nil},
	})
}

// The event stream sends each change as an event named after the job's state and ends with the job.
func TestJobEvents(t *testing.T) {
	q := &cachettest.Jobs{}
	srv := jobServer(t, q, time.Millisecond)
	job, _, err := q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobGenerate, Args: cachet.GenerateRequest{Prompt: "a coat"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/v1/jobs/" + job.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	go func() {
		for i := 1; i <= 3; i++ {
			time.Sleep(20 * time.Millisecond)
			q.Progress(job.ID, i, 3)
		}
		time.Sleep(20 * time.Millisecond)
		q.Finish(job.ID, map[string]int{"images": 1})
	}()
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if e, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, e)
		}
	}
	// Changes that come faster than the client reads coalesce: the middle may hold fewer running events.
	got := strings.Join(events, " ")
	if !strings.HasPrefix(got, "queued running") || !strings.HasSuffix(got, "running succeeded") || strings.Count(got, "running") > 3 {
		t.Errorf("events %q; want queued, running (1–3 times), succeeded", got)
	}
}
