// Package testenv points integration tests at the real services `make test` starts. Tests never skip
// for a missing service: an unreachable one fails the test and says how to start it.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// DatabaseURL is the test database (the services' default port, database cachet_test).
func DatabaseURL() string {
	return env("CACHET_TEST_DATABASE_URL", "postgres://cachet@127.0.0.1:55432/cachet_test?sslmode=disable")
}

// S3 is the test object store; every call gets a bucket of its own so tests don't see each other.
func S3(t testing.TB) cachet.S3Config {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return cachet.S3Config{
		Endpoint:  env("CACHET_TEST_S3_ENDPOINT", "127.0.0.1:59000"),
		AccessKey: env("CACHET_TEST_S3_ACCESS_KEY", "cachet"),
		SecretKey: env("CACHET_TEST_S3_SECRET_KEY", "cachet-secret-key"),
		Bucket:    strings.Trim(fmt.Sprintf("t-%s-%d", name, time.Now().UnixNano()%1e9), "-"),
		Region:    "us-east-1",
	}
}

// DB migrates the test database and opens a pool, closed when the test ends.
func DB(t testing.TB) *storage.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.MigrateAndOpen(ctx, DatabaseURL())
	if err != nil {
		t.Fatalf("test database: %v (start the services with 'make services-up', or run 'make test')", err)
	}
	t.Cleanup(db.Close)
	return db
}

// Objects opens a fresh bucket, emptied and removed when the test ends.
func Objects(t testing.TB) *storage.Objects {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := S3(t)
	o, err := storage.OpenObjects(ctx, cfg)
	if err != nil {
		t.Fatalf("test object store: %v (start the services with 'make services-up', or run 'make test')", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := o.DeletePrefix(ctx, ""); err != nil {
			t.Errorf("emptying test bucket: %v", err)
		}
		if err := o.RemoveBucket(ctx); err != nil {
			t.Errorf("removing test bucket: %v", err)
		}
	})
	return o
}

// PostgresBin is the directory of the Postgres server programs (initdb, pg_ctl) for tests that run a
// server of their own.
func PostgresBin() string { return env("CACHET_TEST_PG_BIN", "/usr/lib/postgresql/17/bin") }

// VersityGW is the S3 server binary provisioning installs, for tests that run one of their own.
func VersityGW() string { return env("CACHET_TEST_VERSITYGW", "/var/cache/cachet/tools/bin/versitygw") }

// PrivateDatabaseURL creates an empty database of the test's own (dropped when the test ends) and returns
// its URL: for tests whose workers must not take another package's jobs, or that need a fresh schema.
func PrivateDatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		t.Fatalf("test database: %v (start the services with 'make services-up', or run 'make test')", err)
	}
	defer admin.Close(context.Background())
	name := fmt.Sprintf("private_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if admin, err := pgx.Connect(ctx, DatabaseURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
			_ = admin.Close(ctx)
		}
	})
	u, err := url.Parse(DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// PrivateDB is a migrated PrivateDatabaseURL's pool, closed when the test ends.
func PrivateDB(t testing.TB) *storage.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := storage.MigrateAndOpen(ctx, PrivateDatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
