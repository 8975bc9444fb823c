// Package auth keeps the API keys: made with a secret shown once, stored as its SHA-256, looked up per
// request through a short-lived cache, revoked by id.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

// secretPrefix starts every key, so a leaked one is recognisable (secret scanners, logs).
const secretPrefix = "ck_"

// cacheFor is how long an authenticated key is trusted without asking Postgres again: a revocation takes
// effect within it.
const cacheFor = 5 * time.Second

// validTenant says whether name is a tenant name: 1–63 of a–z 0–9 - _, starting with a letter or digit
// (the api_keys check constraint says the same).
func validTenant(name string) bool {
	if name == "" || len(name) > 63 || name[0] == '-' || name[0] == '_' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Keys are the API keys in Postgres (cachet.Keys).
type Keys struct {
	st store

	mu    sync.Mutex
	cache map[string]cached // by the secret's SHA-256
}

type cached struct {
	key     *cachet.APIKey
	err     error
	expires time.Time
}

var _ cachet.Keys = (*Keys)(nil)

// New is the keys of db.
func New(db *storage.DB) *Keys { return &Keys{st: store{db.Pool}, cache: map[string]cached{}} }

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a key for k.Tenant and returns it with its secret.
func (ks *Keys) Create(ctx context.Context, k cachet.NewKey) (*cachet.APIKey, string, error) {
	if !validTenant(k.Tenant) {
		return nil, "", cachet.InvalidField("tenant", "%q: use 1–63 lowercase letters, digits, - and _, starting with a letter or digit", k.Tenant)
	}
	if len(k.Name) > 200 {
		return nil, "", cachet.InvalidField("name", "has %d characters; at most 200", len(k.Name))
	}
	l := k.Limits
	if l.RequestsPerSecond < 0 || l.Burst < 0 || l.Jobs < 0 || l.Subjects < 0 || l.Collections < 0 || l.StoredBytes < 0 {
		return nil, "", cachet.InvalidField("limits", "must not be negative (0 takes the server's default)")
	}
	raw := make([]byte, 20)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	secret := secretPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	key := &cachet.APIKey{ID: uuid.NewString(), Tenant: k.Tenant, Name: k.Name, Prefix: secret[:len(secretPrefix)+6],
		Admin: k.Admin, Limits: l}
	if err := ks.st.insert(ctx, key, digest(secret)); err != nil {
		return nil, "", err
	}
	return key, secret, nil
}

// List returns the keys of tenant (every tenant's when it is empty), newest first.
func (ks *Keys) List(ctx context.Context, tenant string) ([]cachet.APIKey, error) {
	return ks.st.list(ctx, tenant)
}

// Revoke ends a key at once on this process and within cacheFor on others.
func (ks *Keys) Revoke(ctx context.Context, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return cachet.Errorf(cachet.CodeNotFound, "no key %s", id)
	}
	found, err := ks.st.revoke(ctx, id)
	if err != nil {
		return err
	}
	if !found {
		return cachet.Errorf(cachet.CodeNotFound, "no live key %s", id)
	}
	ks.mu.Lock()
	clear(ks.cache)
	ks.mu.Unlock()
	return nil
}

// Authenticate returns the live key whose secret this is.
func (ks *Keys) Authenticate(ctx context.Context, secret string) (*cachet.APIKey, error) {
	d := digest(secret)
	ks.mu.Lock()
	c, ok := ks.cache[d]
	ks.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.key, c.err
	}
	key, err := ks.st.bySHA(ctx, d)
	if err != nil {
		return nil, err
	}
	c = cached{key: key, expires: time.Now().Add(cacheFor)}
	if key == nil {
		c.err = cachet.Errorf(cachet.CodeUnauthenticated, "this API key is unknown or revoked")
	}
	ks.mu.Lock()
	if len(ks.cache) > 10000 { // many distinct bad keys: start over rather than grow
		clear(ks.cache)
	}
	ks.cache[d] = c
	ks.mu.Unlock()
	return c.key, c.err
}

// Usage counts what the context's tenant holds (row-level security scopes the counts).
func (ks *Keys) Usage(ctx context.Context) (cachet.Usage, error) { return ks.st.usage(ctx) }
