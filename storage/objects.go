package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cachetlab/cachet"
)

// sha256Meta is the user-metadata key holding an object's content SHA-256 (hex). S3's own per-request
// checksums (CRC32C, added by minio-go) protect the transfer; this one protects the content end to end
// and makes writes idempotent.
const sha256Meta = "Sha256"

// multipartPartSize is the part size for large uploads: objects above it go up in parts.
const multipartPartSize = 16 << 20

// Objects is a bucket in an S3-compatible store.
type Objects struct {
	client *minio.Client
	bucket string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ContentType  string
	SHA256       string // hex; empty for objects not written by Cachet
	LastModified time.Time
}

// OpenObjects connects to the store and creates the bucket if it is missing.
func OpenObjects(ctx context.Context, cfg cachet.S3Config) (*Objects, error) {
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseTLS,
		Region: cfg.Region,
		// A store that is down should fail a request in about a second (answered 503, retried by the
		// client), not after minio-go's default ten retries.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("object store: invalid endpoint %q: %w", cfg.Endpoint, err)
	}
	o := &Objects{client: client, bucket: cfg.Bucket}
	if err := o.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Objects) ensureBucket(ctx context.Context, region string) error {
	exists, err := o.client.BucketExists(ctx, o.bucket)
	if err != nil {
		return o.describeStartError(err)
	}
	if exists {
		return nil
	}
	if err := o.client.MakeBucket(ctx, o.bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil // created concurrently
		}
		return o.describeStartError(err)
	}
	return nil
}

func (o *Objects) describeStartError(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
		return fmt.Errorf("object store: the credentials were refused by %s; fix --s3-access-key/--s3-secret-key: %w", o.client.EndpointURL().Host, err)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) || errors.Is(err, context.DeadlineExceeded) { // minio-go retries refused connections until the deadline
		return fmt.Errorf("object store: cannot reach %s; start it with 'make services-up' or fix --s3-endpoint: %w", o.client.EndpointURL().Host, err)
	}
	return fmt.Errorf("object store: bucket %q at %s: %w", o.bucket, o.client.EndpointURL().Host, err)
}

// Bucket names the bucket this client writes to.
func (o *Objects) Bucket() string { return o.bucket }

// Check reports whether the bucket is reachable (used by /readyz).
func (o *Objects) Check(ctx context.Context) error {
	_, err := o.client.BucketExists(ctx, o.bucket)
	return err
}

// Put stores body (size bytes) under key. The content is hashed first (so body must be seekable), then
// uploaded, in parts above 16 MiB. Writing the same content to the same key again is a no-op.
func (o *Objects) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string) (ObjectInfo, error) {
	sum, err := hashReader(body)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("object store: hashing %s: %w", key, err)
	}
	if existing, err := o.Stat(ctx, key); err == nil && existing.SHA256 == sum && existing.Size == size {
		return existing, nil
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return ObjectInfo{}, fmt.Errorf("object store: rewinding %s: %w", key, err)
	}
	info, err := o.client.PutObject(ctx, o.bucket, key, body, size, minio.PutObjectOptions{
		ContentType:  contentType,
		UserMetadata: map[string]string{sha256Meta: sum},
		PartSize:     multipartPartSize,
	})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("object store: put %s: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: info.Size, ContentType: contentType, SHA256: sum, LastModified: info.LastModified}, nil
}

// PutBytes stores data under key.
func (o *Objects) PutBytes(ctx context.Context, key string, data []byte, contentType string) (ObjectInfo, error) {
	return o.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType)
}

// Stat describes key; a missing key is a cachet.CodeNotFound error.
func (o *Objects) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	st, err := o.client.StatObject(ctx, o.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, o.wrap("stat", key, err)
	}
	return toInfo(st), nil
}

// Get opens key for reading. The reader verifies the content's SHA-256 when it reaches the end and then
// fails with an error instead of io.EOF on a mismatch. A missing key is a cachet.CodeNotFound error.
func (o *Objects) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	obj, err := o.client.GetObject(ctx, o.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, o.wrap("get", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, ObjectInfo{}, o.wrap("get", key, err)
	}
	info := toInfo(st)
	return &verifyingReader{obj: obj, key: key, want: info.SHA256, h: sha256.New()}, info, nil
}

// GetBytes reads the whole of key, verifying its checksum.
func (o *Objects) GetBytes(ctx context.Context, key string) ([]byte, ObjectInfo, error) {
	r, info, err := o.Get(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return data, info, nil
}

// Delete removes key; deleting a missing key succeeds (deletes are idempotent).
func (o *Objects) Delete(ctx context.Context, key string) error {
	if err := o.client.RemoveObject(ctx, o.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return o.wrap("delete", key, err)
	}
	return nil
}

// DeletePrefix removes every object under prefix.
func (o *Objects) DeletePrefix(ctx context.Context, prefix string) error {
	infos, err := o.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := o.Delete(ctx, info.Key); err != nil {
			return err
		}
	}
	return nil
}

// List returns every object under prefix, in key order.
func (o *Objects) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	for obj := range o.client.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("object store: list %s: %w", prefix, obj.Err)
		}
		out = append(out, ObjectInfo{Key: obj.Key, Size: obj.Size, ContentType: obj.ContentType, LastModified: obj.LastModified})
	}
	return out, nil
}

// PresignGet returns a URL that lets anyone holding it read key until ttl passes.
func (o *Objects) PresignGet(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	u, err := o.client.PresignedGetObject(ctx, o.bucket, key, ttl, nil)
	if err != nil {
		return nil, fmt.Errorf("object store: presign %s: %w", key, err)
	}
	return u, nil
}

func (o *Objects) wrap(op, key string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return cachet.Wrap(cachet.CodeNotFound, err, "object %q not found", key)
	}
	return fmt.Errorf("object store: %s %s: %w", op, key, err)
}

func toInfo(st minio.ObjectInfo) ObjectInfo {
	return ObjectInfo{
		Key:          st.Key,
		Size:         st.Size,
		ContentType:  st.ContentType,
		SHA256:       st.UserMetadata[sha256Meta],
		LastModified: st.LastModified,
	}
}

func hashReader(r io.ReadSeeker) (string, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrChecksumMismatch reports stored content that no longer matches the checksum written with it.
var ErrChecksumMismatch = errors.New("object store: content checksum mismatch")

type verifyingReader struct {
	obj  *minio.Object
	key  string
	want string
	h    hash.Hash
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.obj.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) && v.want != "" {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%w: %s has sha256 %s, expected %s", ErrChecksumMismatch, v.key, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.obj.Close() }

// RemoveBucket deletes the (empty) bucket; used by tests that make buckets of their own.
func (o *Objects) RemoveBucket(ctx context.Context) error {
	return o.client.RemoveBucket(ctx, o.bucket)
}
