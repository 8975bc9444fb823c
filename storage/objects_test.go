package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/storage"
)

func TestMultipartRoundTripWithChecksum(t *testing.T) {
	objects := testenv.Objects(t)
	ctx := context.Background()
	data := make([]byte, 50<<20) // above the 16 MiB part size: goes up in 4 parts
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	info, err := objects.Put(ctx, "big/blob.bin", bytes.NewReader(data), int64(len(data)), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != want || info.Size != int64(len(data)) {
		t.Fatalf("put info = %+v, want sha256 %s size %d", info, want, len(data))
	}
	st, err := objects.Stat(ctx, "big/blob.bin")
	if err != nil {
		t.Fatal(err)
	}
	if st.SHA256 != want || st.Size != int64(len(data)) || st.ContentType != "application/octet-stream" {
		t.Fatalf("stat = %+v", st)
	}
	got, _, err := objects.GetBytes(ctx, "big/blob.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("50 MB round trip changed the content")
	}
}

func TestMissingKeyIsTypedNotFound(t *testing.T) {
	objects := testenv.Objects(t)
	ctx := context.Background()
	_, err := objects.Stat(ctx, "nope")
	if !cachet.HasCode(err, cachet.CodeNotFound) {
		t.Fatalf("Stat(missing) = %v, want a not_found error", err)
	}
	_, _, err = objects.Get(ctx, "nope")
	if !cachet.HasCode(err, cachet.CodeNotFound) {
		t.Fatalf("Get(missing) = %v, want a not_found error", err)
	}
	if err := objects.Delete(ctx, "nope"); err != nil {
		t.Fatalf("Delete(missing) = %v, want success (deletes are idempotent)", err)
	}
}

func TestPutIsIdempotentAndListDelete(t *testing.T) {
	objects := testenv.Objects(t)
	ctx := context.Background()
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if _, err := objects.PutBytes(ctx, k, []byte("content of "+k), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := objects.Stat(ctx, "a/1")
	time.Sleep(1100 * time.Millisecond) // Last-Modified has one-second resolution
	again, err := objects.PutBytes(ctx, "a/1", []byte("content of a/1"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	if !again.LastModified.Equal(first.LastModified) {
		t.Errorf("re-putting identical content rewrote the object (%v -> %v)", first.LastModified, again.LastModified)
	}
	list, err := objects.List(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Key != "a/1" || list[1].Key != "a/2" {
		t.Fatalf("List(a/) = %+v", list)
	}
	if err := objects.DeletePrefix(ctx, "a/"); err != nil {
		t.Fatal(err)
	}
	if list, _ := objects.List(ctx, ""); len(list) != 1 || list[0].Key != "b/1" {
		t.Fatalf("after DeletePrefix(a/): %+v", list)
	}
}

func TestPresignedGet(t *testing.T) {
	objects := testenv.Objects(t)
	ctx := context.Background()
	if _, err := objects.PutBytes(ctx, "p.txt", []byte("presigned"), "text/plain"); err != nil {
		t.Fatal(err)
	}
	u, err := objects.PresignGet(ctx, "p.txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(u.String()); code != 200 || body != "presigned" {
		t.Fatalf("presigned GET = %d %q", code, body)
	}
	q := u.Query()
	q.Set("X-Amz-Signature", strings.Repeat("0", 64))
	u.RawQuery = q.Encode()
	if code, _ := get(u.String()); code != http.StatusForbidden {
		t.Fatalf("tampered presigned GET = %d, want 403", code)
	}
}

func TestBadCredentialsNameTheFix(t *testing.T) {
	cfg := testenv.S3(t)
	cfg.SecretKey = "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := storage.OpenObjects(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "credentials were refused") {
		t.Fatalf("OpenObjects(bad secret) = %v, want a credentials error", err)
	}
	cfg = testenv.S3(t)
	cfg.Endpoint = "127.0.0.1:1"
	_, err = storage.OpenObjects(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot reach 127.0.0.1:1") {
		t.Fatalf("OpenObjects(unreachable) = %v, want a reachability error", err)
	}
}
