package cachet

import (
	"cmp"
	"context"
	"time"
)

// Principal is who a piece of work is done for: a tenant, and whether it may see every tenant's rows (an
// admin key, the server's own background work).
type Principal struct {
	Tenant string `json:"tenant"`
	Admin  bool   `json:"admin,omitempty"`
	// KeyID is the API key the request came with ("" for the server's own work).
	KeyID string `json:"key_id,omitempty"`
}

// DefaultTenant owns what is made without a tenant: with keys turned off, and rows from before tenants.
const DefaultTenant = "default"

type principalKey struct{}

// WithPrincipal returns ctx carrying p: storage scopes every query made with it to p's rows.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries. Work without one is the server's own (startup, the
// sweeper, the command line) and sees every tenant: the API sets one on every request.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// APIKey is a key as listed: never its secret, which is shown once, when it is made.
type APIKey struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	Name      string     `json:"name,omitempty"`
	Prefix    string     `json:"prefix"` // the key's first characters, to tell keys apart
	Admin     bool       `json:"admin"`
	Limits    KeyLimits  `json:"limits"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// KeyLimits bound what one key may do; a zero field takes the server's default.
type KeyLimits struct {
	// RequestsPerSecond and Burst are the key's token bucket.
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
	Burst             int     `json:"burst,omitempty"`
	// Jobs bounds the tenant's model jobs queued or running at once.
	Jobs int `json:"jobs,omitempty"`
	// Subjects and Collections bound how many the tenant keeps.
	Subjects    int `json:"subjects,omitempty"`
	Collections int `json:"collections,omitempty"`
	// StoredBytes bounds what the tenant keeps in the object store: subjects' references and caches, and
	// generated images stored for URLs.
	StoredBytes int64 `json:"stored_bytes,omitempty"`
}

// Or fills l's zero fields from def.
func (l KeyLimits) Or(def KeyLimits) KeyLimits {
	return KeyLimits{
		RequestsPerSecond: cmp.Or(l.RequestsPerSecond, def.RequestsPerSecond),
		Burst:             cmp.Or(l.Burst, def.Burst),
		Jobs:              cmp.Or(l.Jobs, def.Jobs),
		Subjects:          cmp.Or(l.Subjects, def.Subjects),
		Collections:       cmp.Or(l.Collections, def.Collections),
		StoredBytes:       cmp.Or(l.StoredBytes, def.StoredBytes),
	}
}

// NewKey is a key to make.
type NewKey struct {
	Tenant string
	Name   string
	Admin  bool
	Limits KeyLimits
}

// Usage is what a tenant holds now, for its quotas.
type Usage struct {
	Jobs        int   `json:"jobs"` // queued or running
	Subjects    int   `json:"subjects"`
	Collections int   `json:"collections"`
	StoredBytes int64 `json:"stored_bytes"`
}

// Keys are the API keys.
type Keys interface {
	// Create makes a key and returns it with its secret (shown once).
	Create(ctx context.Context, k NewKey) (*APIKey, string, error)
	List(ctx context.Context, tenant string) ([]APIKey, error)
	Revoke(ctx context.Context, id string) error
	// Authenticate returns the live key whose secret this is (CodeUnauthenticated otherwise).
	Authenticate(ctx context.Context, secret string) (*APIKey, error)
	// Usage counts what the principal's tenant holds.
	Usage(ctx context.Context) (Usage, error)
}
