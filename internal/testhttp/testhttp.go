// Package testhttp sends the requests API tests make and reads their answers whole.
package testhttp

import (
	"io"
	"net/http"
	"testing"
)

// Do sends one request (contentType may be empty) and returns the response with its whole body.
func Do(t testing.TB, method, url, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Get is Do for a GET, returning the status and body.
func Get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, b := Do(t, http.MethodGet, url, "", nil)
	return resp.StatusCode, b
}
