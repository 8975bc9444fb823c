package acceptance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api/client"
)

// tenantClient calls the API with one key.
type tenantClient struct {
	t    *testing.T
	base string
	key  string
}

func (c tenantClient) do(method, path, ctype string, body []byte) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := (&http.Client{Transport: contractTransport{c.t}}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (c tenantClient) json(method, path, body string, want int, v any) {
	c.t.Helper()
	ctype := ""
	if body != "" {
		ctype = "application/json"
	}
	code, _, b := c.do(method, path, ctype, []byte(body))
	if code != want {
		c.t.Fatalf("%s %s: %d %s; want %d", method, path, code, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// makeKey runs `cachet keys create` on the server's database and returns the key.
func makeKey(t *testing.T, bin, dbURL string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"keys", "create", "--database-url", dbURL}, args...)...).Output()
	if err != nil {
		t.Fatalf("keys create %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// Every route, called with another tenant's ids, answers 404 and changes nothing; names are per tenant;
// an admin key sees both; keys that are missing, wrong or revoked answer 401; limits hold.
func TestTenantsAreIsolated(t *testing.T) {
	dbURL, services := jobServices(t)
	bin := buildBinary(t)
	// Few prototype samples per class: the build samples them, and this test is about who sees what, not
	// about accuracy (on a host without AVX-512 the default 32 took the build past two minutes).
	srv := startServer(t, bin, append(services, "--auth", "keys", "--sync-wait", "5m", "--classify-samples", "8")...)
	base := "http://" + srv.addr
	a := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "alice")}
	b := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "bob", "--quota-collections", "1", "--rate-limit", "3", "--rate-burst", "3")}
	admin := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "ops", "--admin")}

	// Alice's things, made through the client generated from the contract: a subject, a built collection,
	// a stored generation's job.
	ctx := context.Background()
	ac, bc := apiClient(t, base, a.key), apiClient(t, base, b.key)
	ctype, form := multipartBody(t, map[string]string{"name": "coat"}, readExample(t, "docs/examples/coat.png"))
	up, err := ac.CreateSubjectWithBodyWithResponse(ctx, ctype, bytes.NewReader(form))
	if err != nil || up.JSON201 == nil || up.JSON201.Id == nil {
		t.Fatalf("alice's upload: %v %d %s", err, up.StatusCode(), up.Body)
	}
	subID := *up.JSON201.Id
	labels := []string{"coat", "bag"}
	name := "shop"
	created, err := ac.CreateCollectionWithResponse(ctx, client.CreateCollectionBody{Name: &name, Labels: &labels})
	if err != nil || created.JSON201 == nil {
		t.Fatalf("alice's collection: %v %d %s", err, created.StatusCode(), created.Body)
	}
	colID := *created.JSON201.Id
	img := func(name string) string { return b64(readExample(t, "docs/examples/"+name+".png")) }
	samples := fmt.Sprintf(`{"samples": [{"image": %q, "label": "coat"}, {"image": %q, "label": "bag"}]}`, img("coat"), img("bag"))
	if r, err := ac.AddSamplesWithBodyWithResponse(ctx, colID, "application/json", strings.NewReader(samples)); err != nil || r.JSON200 == nil {
		t.Fatalf("alice's samples: %v %s", err, r.Body)
	}
	if r, err := ac.BuildCollectionWithBodyWithResponse(ctx, colID, "application/json", strings.NewReader(`{}`)); err != nil || r.JSON200 == nil {
		t.Fatalf("alice's build: %v %s", err, r.Body)
	}
	gen, err := ac.GenerateWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"prompt": "a large bag", "output": "url", "steps": 4, "async": true}`))
	if err != nil || gen.JSON202 == nil {
		t.Fatalf("alice's generation: %v %d %s", err, gen.StatusCode(), gen.Body)
	}
	jobID := *gen.JSON202.Id
	if r, err := ac.GetJobWithResponse(ctx, jobID); err != nil || r.JSON200 == nil {
		t.Fatalf("alice's job: %v %s", err, r.Body)
	}

	// Bob sees none of it, and can touch none of it: every route answers 404.
	type answered interface{ StatusCode() int }
	wrap := func(r answered, err error) (answered, error) { return r, err }
	for _, tc := range []struct {
		route string
		call  func() (answered, error)
	}{
		{"GET subject", func() (answered, error) { return wrap(bc.GetSubjectWithResponse(ctx, subID)) }},
		{"similar", func() (answered, error) { return wrap(bc.SimilarSubjectsWithResponse(ctx, subID, nil)) }},
		{"retry", func() (answered, error) { return wrap(bc.RetrySubjectWithResponse(ctx, subID, nil)) }},
		{"DELETE subject", func() (answered, error) { return wrap(bc.DeleteSubjectWithResponse(ctx, subID)) }},
		{"generate with the subject", func() (answered, error) {
			return wrap(bc.GenerateWithBodyWithResponse(ctx, "application/json", strings.NewReader(fmt.Sprintf(`{"prompt": "a large coat", "subject_id": %q, "steps": 4}`, subID))))
		}},
		{"GET collection", func() (answered, error) { return wrap(bc.GetCollectionWithResponse(ctx, colID)) }},
		{"samples", func() (answered, error) {
			return wrap(bc.AddSamplesWithBodyWithResponse(ctx, colID, "application/json", strings.NewReader(fmt.Sprintf(`{"samples": [{"image": %q, "label": "coat"}]}`, img("coat2")))))
		}},
		{"build", func() (answered, error) {
			return wrap(bc.BuildCollectionWithBodyWithResponse(ctx, colID, "application/json", strings.NewReader(`{}`)))
		}},
		{"classify with the collection", func() (answered, error) {
			return wrap(bc.ClassifyWithBodyWithResponse(ctx, "application/json", strings.NewReader(fmt.Sprintf(`{"collection": %q, "images": [%q]}`, colID, img("coat2")))))
		}},
		{"GET job", func() (answered, error) { return wrap(bc.GetJobWithResponse(ctx, jobID)) }},
		{"job events", func() (answered, error) { return wrap(bc.JobEventsWithResponse(ctx, jobID)) }},
		{"cancel job", func() (answered, error) { return wrap(bc.CancelJobWithResponse(ctx, jobID)) }},
	} {
		r, err := tc.call()
		if err != nil || r.StatusCode() != http.StatusNotFound {
			t.Errorf("bob, %s of alice's: %v %v; want 404", tc.route, err, r)
		}
		time.Sleep(350 * time.Millisecond) // bob's key allows 3 requests a second
	}
	sub := cachet.Subject{ID: subID}
	col := cachet.Collection{ID: colID}
	var subs struct {
		Subjects []cachet.Subject `json:"subjects"`
	}
	b.json(http.MethodGet, "/v1/subjects", "", http.StatusOK, &subs)
	var cols struct {
		Collections []cachet.Collection `json:"collections"`
	}
	b.json(http.MethodGet, "/v1/collections", "", http.StatusOK, &cols)
	if len(subs.Subjects) != 0 || len(cols.Collections) != 0 {
		t.Errorf("bob lists %d subjects and %d collections; want none", len(subs.Subjects), len(cols.Collections))
	}
	// Names are per tenant; bob's key keeps one collection.
	time.Sleep(time.Second)
	b.json(http.MethodPost, "/v1/collections", `{"name": "shop", "labels": ["x", "y"]}`, http.StatusCreated, nil)
	if code, _, body := b.do(http.MethodPost, "/v1/collections", "application/json", []byte(`{"name": "shop2", "labels": ["x", "y"]}`)); code != http.StatusForbidden || !strings.Contains(string(body), "quota_exceeded") {
		t.Errorf("bob's second collection: %d %s; want 403 quota_exceeded", code, body)
	}
	// Alice's things are all still there; the admin sees them too.
	a.json(http.MethodGet, "/v1/subjects/"+sub.ID, "", http.StatusOK, nil)
	admin.json(http.MethodGet, "/v1/subjects/"+sub.ID, "", http.StatusOK, nil)
	admin.json(http.MethodGet, "/v1/collections/"+col.ID, "", http.StatusOK, nil)

	// Bob's rate: a burst past 3 a second answers 429 with Retry-After.
	time.Sleep(1500 * time.Millisecond)
	limited := 0
	for range 8 {
		if code, h, _ := b.do(http.MethodGet, "/v1/subjects", "", nil); code == http.StatusTooManyRequests && h.Get("Retry-After") != "" {
			limited++
		}
	}
	if limited < 4 {
		t.Errorf("%d of 8 back-to-back requests at 3/s (burst 3) were limited; want at least 4", limited)
	}

	// Keys: none, unknown, not admin for /metrics, revoked.
	for _, c := range []tenantClient{{t, base, ""}, {t, base, "ck_notakey"}} {
		if code, h, _ := c.do(http.MethodGet, "/v1/subjects", "", nil); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("key %q: %d; want 401 with WWW-Authenticate", c.key, code)
		}
	}
	if code, _, _ := a.do(http.MethodGet, "/metrics", "", nil); code != http.StatusForbidden {
		t.Errorf("/metrics with a tenant key: %d; want 403", code)
	}
	admin.json(http.MethodGet, "/metrics", "", http.StatusOK, nil)
	if code, _, _ := (tenantClient{t, base, ""}).do(http.MethodGet, "/readyz", "", nil); code != http.StatusOK {
		t.Errorf("/readyz without a key: %d", code)
	}
	out, err := exec.Command(bin, "keys", "list", "--json", "--tenant", "alice", "--database-url", dbURL).Output()
	if err != nil {
		t.Fatal(err)
	}
	var keys []cachet.APIKey
	if err := json.Unmarshal(out, &keys); err != nil || len(keys) != 1 || strings.Contains(string(out), a.key) {
		t.Fatalf("keys list: %v %s", err, out)
	}
	if err := exec.Command(bin, "keys", "revoke", keys[0].ID, "--database-url", dbURL).Run(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _ := a.do(http.MethodGet, "/v1/subjects", "", nil)
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked key still answers %d after 10 s", code)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// apiClient is the client generated from api/openapi.json, with key, checking every answer against the
// contract.
func apiClient(t *testing.T, base, key string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(base, client.WithHTTPClient(&http.Client{Transport: contractTransport{t}}),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// contractTransport checks each answer against the contract on its way to the client.
type contractTransport struct{ t *testing.T }

func (c contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	checkContract(c.t, req.Method, req.URL.String(), resp.StatusCode, resp.Header, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
