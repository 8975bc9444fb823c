package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
)

// scaleClient drives the API as clients would: async submissions followed on their event streams.
type scaleClient struct {
	base     string
	o        ScaleOptions
	http     *http.Client
	subjects []string
	images   map[string][]byte

	mu       sync.Mutex
	rejected int
	done     atomic.Int64
}

func newScaleClient(base string, o ScaleOptions) *scaleClient {
	return &scaleClient{base: base, o: o, http: &http.Client{Timeout: 10 * time.Minute}, images: map[string][]byte{}}
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("scale: %s not ready within %s", url, limit)
}

// exampleNames are the reference images uploads cycle through.
var exampleNames = []string{"coat", "bag", "sneaker", "coat2", "bag2", "sneaker2"}

// setup uploads the two subjects personalized jobs use (waiting for them) and reads the example images.
func (c *scaleClient) setup(ctx context.Context) error {
	for _, n := range exampleNames {
		data, err := os.ReadFile(filepath.Join(c.o.Examples, n+".png"))
		if err != nil {
			return err
		}
		c.images[n] = data
	}
	for i, n := range []string{"coat", "sneaker"} {
		body, ctype, err := c.upload(fmt.Sprintf("scale-setup-%d", i), n, false)
		if err != nil {
			return err
		}
		var sub struct {
			ID     string `json:"id"`
			Target string `json:"target"`
		}
		code, data, err := c.do(ctx, http.MethodPost, "/v1/subjects", ctype, body)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &sub); err != nil {
			return err
		}
		if code == http.StatusAccepted { // still building after the sync wait: follow its job
			var job cachet.Job
			if err := json.Unmarshal(data, &job); err != nil {
				return err
			}
			if err := c.follow(ctx, job.ID); err != nil {
				return err
			}
			sub.ID = strings.TrimPrefix(job.Target, "/v1/subjects/")
		} else if code != http.StatusCreated {
			return fmt.Errorf("uploading a subject: %d %s", code, data)
		}
		c.subjects = append(c.subjects, sub.ID)
	}
	return nil
}

func (c *scaleClient) upload(name, image string, async bool) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("name", name)
	if async {
		_ = mw.WriteField("async", "true")
	}
	fw, err := mw.CreateFormFile("images", image+".png")
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(c.images[image]); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

func (c *scaleClient) do(ctx context.Context, method, path, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// job i of a run: mostly plain one-image generations, some stored two-image ones, some personalized, some
// subject uploads.
func (c *scaleClient) submit(ctx context.Context, i int) (string, cachet.JobKind, error) {
	var body []byte
	ctype, path, kind := "application/json", "/v1/generate", cachet.JobGenerate
	switch i % 10 {
	case 7:
		body = fmt.Appendf(nil, `{"prompt": "a large bag", "n": 2, "seed": %d, "output": "url", "steps": %d, "async": true}`, i, c.o.Steps)
	case 8:
		body = fmt.Appendf(nil, `{"prompt": "a large coat", "subject_id": %q, "seed": %d, "steps": %d, "async": true}`, c.subjects[i/10%len(c.subjects)], i, c.o.Steps)
	case 9:
		var err error
		if body, ctype, err = c.upload(fmt.Sprintf("scale-%d", i), exampleNames[i/10%len(exampleNames)], true); err != nil {
			return "", "", err
		}
		path, kind = "/v1/subjects", cachet.JobSubject
	default:
		body = fmt.Appendf(nil, `{"prompt": %q, "seed": %d, "steps": %d, "async": true}`, BatchPrompts[i%len(BatchPrompts)], i, c.o.Steps)
	}
	for {
		code, data, err := c.do(ctx, http.MethodPost, path, ctype, body)
		if err != nil {
			return "", kind, err
		}
		switch code {
		case http.StatusAccepted:
			var job cachet.Job
			if err := json.Unmarshal(data, &job); err != nil {
				return "", kind, err
			}
			return job.ID, kind, nil
		case http.StatusTooManyRequests:
			c.mu.Lock()
			c.rejected++
			c.mu.Unlock()
			time.Sleep(time.Second)
		default:
			return "", kind, fmt.Errorf("job %d: %d %s", i, code, data)
		}
	}
}

// follow reads the job's event stream until its last event; an error unless it succeeded.
func (c *scaleClient) follow(ctx context.Context, id string) error {
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/jobs/"+id+"/events", nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		state := ""
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				state = s
			}
		}
		resp.Body.Close()
		switch cachet.JobState(state) {
		case cachet.JobSucceeded:
			return nil
		case cachet.JobFailed, cachet.JobCanceled:
			return fmt.Errorf("job %s %s", id, state)
		}
	}
	return ctx.Err()
}

// run sends jobs from o.Clients loops and measures each from submission to its last event.
func (c *scaleClient) run(ctx context.Context, jobs int) *ScaleRun {
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range jobs {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	res := &ScaleRun{Jobs: jobs, ByKind: map[string]int{}}
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for range c.o.Clients {
		wg.Go(func() {
			for i := range next {
				t := time.Now()
				id, _, err := c.submit(ctx, i)
				if err == nil {
					err = c.follow(ctx, id)
				}
				mu.Lock()
				if err == nil {
					lat = append(lat, time.Since(t))
				}
				mu.Unlock()
				c.done.Add(1)
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.JobsPerSec = float64(len(lat)) / res.Seconds
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50MS, res.P95MS = cachet.Millis(lat[len(lat)/2]), cachet.Millis(lat[len(lat)*95/100])
	}
	res.Rejected429 = c.rejected
	return res
}

// finished counts the jobs of the run that have ended (either way).
func (c *scaleClient) finished() int { return int(c.done.Load()) }

// audit counts, from the database, what the run left: succeeded jobs by kind, jobs a second worker took,
// lost jobs (not succeeded), and duplicated results (a stored generation with more rows than images, an
// upload that made more than one subject).
func (c *scaleClient) audit(ctx context.Context, dbURL string, res *ScaleRun) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT j.kind, j.state, count(*), count(*) FILTER (WHERE r.attempt > 1)
		FROM jobs j JOIN river_job r ON r.id = j.id GROUP BY j.kind, j.state`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var kind, state string
		var n, rerun int
		if err := rows.Scan(&kind, &state, &n, &rerun); err != nil {
			return err
		}
		res.Rerun += rerun
		if state == string(cachet.JobSucceeded) {
			res.ByKind[kind] += n
			res.Succeeded += n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	res.Succeeded -= len(c.subjects) // the setup uploads
	res.ByKind[string(cachet.JobSubject)] -= len(c.subjects)
	res.Lost = res.Jobs - res.Succeeded
	var dupGenerations, dupSubjects int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT batch_id FROM generations GROUP BY batch_id HAVING count(*) > 2) d`).Scan(&dupGenerations); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT name FROM subjects GROUP BY name HAVING count(*) > 1) d`).Scan(&dupSubjects); err != nil {
		return err
	}
	res.Duplicated = dupGenerations + dupSubjects
	return nil
}
