package auth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/auth"
	"github.com/cachetlab/cachet/internal/testenv"
)

func TestKeysLifecycle(t *testing.T) {
	ctx := context.Background()
	db := testenv.PrivateDB(t)
	keys := auth.New(db)
	for _, bad := range []cachet.NewKey{{Tenant: ""}, {Tenant: "Acme"}, {Tenant: "-x"}, {Tenant: strings.Repeat("a", 64)},
		{Tenant: "acme", Limits: cachet.KeyLimits{Jobs: -1}}} {
		if _, _, err := keys.Create(ctx, bad); !cachet.HasCode(err, cachet.CodeInvalidArgument) {
			t.Errorf("Create(%+v) = %v; want invalid_argument", bad, err)
		}
	}
	k, secret, err := keys.Create(ctx, cachet.NewKey{Tenant: "acme", Name: "ci", Limits: cachet.KeyLimits{Jobs: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "ck_") || !strings.HasPrefix(secret, k.Prefix) || len(secret) < 30 {
		t.Fatalf("secret %q, prefix %q", secret, k.Prefix)
	}
	got, err := keys.Authenticate(ctx, secret)
	if err != nil || got.ID != k.ID || got.Tenant != "acme" || got.Limits.Jobs != 3 {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if _, err := keys.Authenticate(ctx, secret+"x"); !cachet.HasCode(err, cachet.CodeUnauthenticated) {
		t.Errorf("a wrong secret: %v", err)
	}
	// Only the digest is stored.
	var stored int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE sha256 = $1 OR prefix = $1`, secret).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the secret is stored as it is (%d rows, %v)", stored, err)
	}
	list, err := keys.List(ctx, "acme")
	if err != nil || len(list) != 1 || list[0].ID != k.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := keys.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, secret); !cachet.HasCode(err, cachet.CodeUnauthenticated) {
		t.Errorf("a revoked key: %v", err)
	}
	if err := keys.Revoke(ctx, k.ID); !cachet.HasCode(err, cachet.CodeNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
}

// Rows written for one tenant are invisible to another and visible to an admin, whatever role the server
// logs in as.
func TestRowsBelongToTheirTenant(t *testing.T) {
	db := testenv.PrivateDB(t)
	acme := cachet.WithPrincipal(context.Background(), cachet.Principal{Tenant: "acme"})
	other := cachet.WithPrincipal(context.Background(), cachet.Principal{Tenant: "other"})
	admin := cachet.WithPrincipal(context.Background(), cachet.Principal{Tenant: "ops", Admin: true})
	if _, err := db.Pool.Exec(acme, `INSERT INTO collections (id, name, labels) VALUES (gen_random_uuid(), 'shop', '{a,b}')`); err != nil {
		t.Fatal(err)
	}
	// The same name in another tenant is fine.
	if _, err := db.Pool.Exec(other, `INSERT INTO collections (id, name, labels) VALUES (gen_random_uuid(), 'shop', '{a,b}')`); err != nil {
		t.Fatal(err)
	}
	// A tenant cannot write a row into another's.
	if _, err := db.Pool.Exec(other, `INSERT INTO collections (id, name, labels, tenant) VALUES (gen_random_uuid(), 'x', '{a,b}', 'acme')`); err == nil {
		t.Error("a row written into another tenant")
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want int
	}{{"acme", acme, 1}, {"other", other, 1}, {"admin", admin, 2}, {"the server's own work", context.Background(), 2}} {
		var n int
		if err := db.Pool.QueryRow(tc.ctx, `SELECT count(*) FROM collections`).Scan(&n); err != nil || n != tc.want {
			t.Errorf("%s sees %d collections (%v); want %d", tc.name, n, err, tc.want)
		}
	}
	u, err := auth.New(db).Usage(acme)
	if err != nil || u.Collections != 1 {
		t.Errorf("acme's usage: %+v, %v", u, err)
	}
}
