package cachettest

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
)

// Keys is an in-memory cachet.Keys: each key's secret is "secret-" plus its id; Held is what Usage answers
// for every tenant.
type Keys struct {
	mu   sync.Mutex
	keys []cachet.APIKey
	Held cachet.Usage
}

var _ cachet.Keys = (*Keys)(nil)

func (ks *Keys) Create(_ context.Context, k cachet.NewKey) (*cachet.APIKey, string, error) {
	if k.Tenant == "" {
		return nil, "", cachet.InvalidField("tenant", "is empty")
	}
	key := cachet.APIKey{ID: uuid.NewString(), Tenant: k.Tenant, Name: k.Name, Admin: k.Admin, Limits: k.Limits, CreatedAt: time.Now()}
	key.Prefix = "secret-" + key.ID[:6]
	ks.mu.Lock()
	ks.keys = append(ks.keys, key)
	ks.mu.Unlock()
	return &key, "secret-" + key.ID, nil
}

func (ks *Keys) List(_ context.Context, tenant string) ([]cachet.APIKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var out []cachet.APIKey
	for _, k := range ks.keys {
		if tenant == "" || k.Tenant == tenant {
			out = append(out, k)
		}
	}
	return out, nil
}

func (ks *Keys) Revoke(_ context.Context, id string) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for i := range ks.keys {
		if ks.keys[i].ID == id && ks.keys[i].RevokedAt == nil {
			now := time.Now()
			ks.keys[i].RevokedAt = &now
			return nil
		}
	}
	return cachet.Errorf(cachet.CodeNotFound, "no live key %s", id)
}

func (ks *Keys) Authenticate(_ context.Context, secret string) (*cachet.APIKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for _, k := range ks.keys {
		if "secret-"+k.ID == secret && k.RevokedAt == nil {
			return &k, nil
		}
	}
	return nil, cachet.Errorf(cachet.CodeUnauthenticated, "this API key is unknown or revoked")
}

func (ks *Keys) Usage(context.Context) (cachet.Usage, error) { return ks.Held, nil }
