package acceptance_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet/images/imagestest"
)

// rssBytes is a process's resident set size.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func multipartBody(t *testing.T, fields map[string]string, image []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if image != nil {
		w, err := mw.CreateFormFile("images", "hostile.png")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(image) //nolint:errcheck // a bytes.Buffer
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// Every hostile input gets a clear 4xx within 100 ms from the real binary, and the server's memory does
// not grow by 200 MB over all of them.
func TestHostileInputs(t *testing.T) {
	srv := startServer(t, buildBinary(t), sharedServices(t)...)
	base := "http://" + srv.addr
	bombs := map[string][]byte{
		"16-bit RGBA PNG 4096²":       imagestest.ZeroPNG(t, 4096, 4096, 16, 6, false),
		"progressive JPEG 4096²":      imagestest.FlatJPEG{Width: 4096, Height: 4096, Components: 3, Progressive: true}.Encode(),
		"1-bit PNG bomb 4096²":        imagestest.ZeroPNG(t, 4096, 4096, 1, 3, false),
		"interlaced RGBA PNG 4096²":   imagestest.ZeroPNG(t, 4096, 4096, 8, 6, true),
		"PNG declaring 100000² sides": imagestest.ZeroPNG(t, 100000, 8, 8, 0, false)[:200],
	}
	type hostile struct {
		name, method, path, contentType string
		body                            []byte
	}
	var cases []hostile
	for name, img := range bombs {
		ct, body := multipartBody(t, map[string]string{"name": "bomb"}, img)
		cases = append(cases,
			hostile{"upload: " + name, "POST", "/v1/subjects", ct, body},
			hostile{"classify: " + name, "POST", "/v1/classify", "application/json", []byte(`{"images": ["` + b64(img) + `"]}`)})
	}
	ct, body := multipartBody(t, map[string]string{"name": "x"}, nil)
	cases = append(cases,
		hostile{"multipart without its closing boundary", "POST", "/v1/subjects", ct, body[:len(body)-8]},
		hostile{"multipart with a wrong boundary", "POST", "/v1/subjects", "multipart/form-data; boundary=nope", body},
		hostile{"multipart without a boundary", "POST", "/v1/subjects", "multipart/form-data", body},
		hostile{"a huge array of images", "POST", "/v1/classify", "application/json", []byte(`{"images": [` + strings.Repeat(`"AAAA",`, 6<<20) + `"AAAA"]}`)},
		hostile{"a long array of tiny images", "POST", "/v1/classify", "application/json", []byte(`{"images": [` + strings.Repeat(`"",`, 5000) + `""]}`)},
		hostile{"deeply nested JSON", "POST", "/v1/generate", "application/json", []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))},
		hostile{"trailing garbage", "POST", "/v1/generate", "application/json", []byte(`{"prompt": "a large coat"}xyz`)},
		hostile{"a cross-site form post", "POST", "/v1/generate", "application/x-www-form-urlencoded", []byte(`{"prompt": "a large coat"}`)},
		hostile{"text/plain", "POST", "/v1/classify", "text/plain", []byte(`{"images": []}`)},
		hostile{"a 1 MB prompt", "POST", "/v1/generate", "application/json", []byte(`{"prompt": "` + strings.Repeat("coat ", 200000) + `"}`)},
		hostile{"an unknown subject id", "GET", "/v1/subjects/../../etc/passwd", "", nil},
	)
	pid := srv.cmd.Process.Pid
	before := rssBytes(t, pid)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, tc.method, base+tc.path, tc.contentType, tc.body, 10*time.Second)
			if a.err != nil || a.status < 400 || a.status > 499 || !bytes.Contains(a.body, []byte(`"message"`)) {
				t.Fatalf("= %d %s %v; want a 4xx with a message", a.status, a.body, a.err)
			}
			// The budget is for the server's work, not for sending a body of many megabytes.
			if limit := 100*time.Millisecond + time.Duration(len(tc.body)>>20)*20*time.Millisecond; a.took > limit {
				t.Errorf("answered %d in %v (limit %v)", a.status, a.took, limit)
			}
			t.Logf("%d in %v: %s", a.status, a.took.Round(time.Millisecond), tail(string(a.body), 160))
		})
	}
	after := rssBytes(t, pid)
	t.Logf("server RSS %d MB before, %d MB after %d hostile requests", before>>20, after>>20, len(cases))
	if after-before > 200<<20 {
		t.Errorf("server RSS grew by %d MB", (after-before)>>20)
	}
	if a := send(t, "GET", base+"/readyz", "", nil, 5*time.Second); a.status != http.StatusOK {
		t.Fatalf("the server is not ready after the hostile inputs: %d", a.status)
	}
	if a := send(t, "GET", base+"/metrics", "", nil, 5*time.Second); !bytes.Contains(a.body, []byte("cachet_c_heap_bytes ")) {
		t.Errorf("/metrics lacks the C heap gauge")
	}
}
