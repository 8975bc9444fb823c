package acceptance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	checkContract(c.t, method, c.base+path, resp.StatusCode, resp.Header, b)
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
	srv := startServer(t, bin, append(services, "--auth", "keys", "--sync-wait", "2m")...)
	base := "http://" + srv.addr
	a := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "alice")}
	b := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "bob", "--quota-collections", "1", "--rate-limit", "3", "--rate-burst", "3")}
	admin := tenantClient{t, base, makeKey(t, bin, dbURL, "--tenant", "ops", "--admin")}

	// Alice's things: a subject, a stored generation, a built collection, a finished job.
	ctype, form := multipartBody(t, map[string]string{"name": "coat"}, readExample(t, "docs/examples/coat.png"))
	code, _, body := a.do(http.MethodPost, "/v1/subjects", ctype, form)
	if code != http.StatusCreated {
		t.Fatalf("alice's upload: %d %s", code, body)
	}
	var sub cachet.Subject
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatal(err)
	}
	var col cachet.Collection
	a.json(http.MethodPost, "/v1/collections", `{"name": "shop", "labels": ["coat", "bag"]}`, http.StatusCreated, &col)
	img := func(name string) string { return b64(readExample(t, "docs/examples/"+name+".png")) }
	a.json(http.MethodPost, "/v1/collections/"+col.ID+"/samples", fmt.Sprintf(`{"samples": [{"image": %q, "label": "coat"}, {"image": %q, "label": "bag"}]}`, img("coat"), img("bag")), http.StatusOK, nil)
	a.json(http.MethodPost, "/v1/collections/"+col.ID+"/build", "", http.StatusOK, nil)
	var job cachet.Job
	a.json(http.MethodPost, "/v1/generate", `{"prompt": "a large bag", "output": "url", "steps": 4, "async": true}`, http.StatusAccepted, &job)
	a.json(http.MethodGet, "/v1/jobs/"+job.ID, "", http.StatusOK, nil)

	// Bob sees none of it, and can touch none of it.
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/subjects/" + sub.ID, ""},
		{http.MethodGet, "/v1/subjects/" + sub.ID + "/similar", ""},
		{http.MethodPost, "/v1/subjects/" + sub.ID + "/retry", ""},
		{http.MethodDelete, "/v1/subjects/" + sub.ID, ""},
		{http.MethodPost, "/v1/generate", fmt.Sprintf(`{"prompt": "a large coat", "subject_id": %q, "steps": 4}`, sub.ID)},
		{http.MethodGet, "/v1/collections/" + col.ID, ""},
		{http.MethodPost, "/v1/collections/" + col.ID + "/samples", fmt.Sprintf(`{"samples": [{"image": %q, "label": "coat"}]}`, img("coat2"))},
		{http.MethodPost, "/v1/collections/" + col.ID + "/build", ""},
		{http.MethodPost, "/v1/classify", fmt.Sprintf(`{"collection": %q, "images": [%q]}`, col.ID, img("coat2"))},
		{http.MethodGet, "/v1/jobs/" + job.ID, ""},
		{http.MethodGet, "/v1/jobs/" + job.ID + "/events", ""},
		{http.MethodDelete, "/v1/jobs/" + job.ID, ""},
	} {
		ctype := ""
		if tc.body != "" {
			ctype = "application/json"
		}
		if code, _, body := b.do(tc.method, tc.path, ctype, []byte(tc.body)); code != http.StatusNotFound {
			t.Errorf("bob %s %s: %d %s; want 404", tc.method, tc.path, code, body)
		}
		time.Sleep(350 * time.Millisecond) // bob's key allows 3 requests a second
	}
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
