// Package storage owns Cachet's persistent state: Postgres (pgx pool, migrations, queries) and the
// S3-compatible object store (minio-go).
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/migrations"
)

// DB is the Postgres connection pool with pgvector types registered on every connection.
type DB struct {
	Pool *pgxpool.Pool
}

// MigrationTimeout bounds applying migrations (including the wait for another replica's lock); a start-up
// deadline on the caller's context bounds only the first contact.
const MigrationTimeout = 10 * time.Minute

// Applied are the migrations one Migrate applied: the job queue's (River's) and Cachet's own.
type Applied struct {
	River  []int
	Cachet []int64
}

// Empty says whether the database was up to date.
func (a Applied) Empty() bool { return len(a.River) == 0 && len(a.Cachet) == 0 }

// Migrate applies every pending migration — River's job-queue schema first (Cachet's jobs table refers to
// it), then Cachet's embedded ones — each under a Postgres advisory lock, so replicas starting together
// apply each migration once. pgvector's types can only be registered once its extension exists, so this
// runs before OpenDB.
func Migrate(ctx context.Context, databaseURL string) (Applied, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return Applied{}, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return Applied{}, describeConnError(databaseURL, err)
	}
	mctx, cancel := migrationContext(ctx)
	defer cancel()
	var applied Applied
	if applied.River, err = migrateRiver(mctx, databaseURL); err != nil {
		return applied, err
	}
	applied.Cachet, err = migrateDB(mctx, db)
	return applied, err
}

// riverMigrationLock is the advisory lock River's migrations run under (goose holds its own for ours).
const riverMigrationLock = 0x63616368_72697672 // "cachrivr"

// migrateRiver applies River's pending migrations in one transaction under riverMigrationLock.
func migrateRiver(ctx context.Context, databaseURL string) ([]int, error) {
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	pcfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: job queue migrations: %w", err)
	}
	var versions []int
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(riverMigrationLock)); err != nil {
			return err
		}
		res, err := migrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return err
		}
		for _, v := range res.Versions {
			versions = append(versions, v.Version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: applying the job queue's migrations: %w", err)
	}
	return versions, nil
}

// migrationContext keeps ctx's cancellation (an interrupted start) but not its deadline (a start-up
// timeout sized for connecting, not for a long migration).
func migrationContext(ctx context.Context) (context.Context, context.CancelFunc) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MigrationTimeout)
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	return mctx, func() { stop(); cancel() }
}

func migrateDB(ctx context.Context, db *sql.DB) ([]int64, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	// Out-of-order: migrations are numbered when work starts, so a lower number may land after a higher one.
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithAllowOutofOrder(true),
		goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("postgres: loading migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: applying migrations: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// scopeToPrincipal gives a connection, as it is handed out, the tenant of the work that asked for it: the
// row-level security policies (migration 00015) show and accept only that tenant's rows, unless it is
// admin. A tenant's connection also takes the role cachet_scoped, since the policies do not bind the
// superuser or owner the server may log in as. Work without a principal is the server's own and sees every
// tenant. Nothing is sent when the connection already has the scope.
func scopeToPrincipal(ctx context.Context, conn *pgx.Conn) (bool, error) {
	p, ok := cachet.PrincipalFrom(ctx)
	if !ok {
		p = cachet.Principal{Admin: true}
	}
	admin, role := "off", "cachet_scoped"
	if p.Admin {
		admin, role = "on", "none"
	}
	scope := p.Tenant + "\x00" + admin
	data := conn.PgConn().CustomData()
	if data[scopeKey] == scope {
		return true, nil
	}
	if _, err := conn.Exec(ctx, `SELECT set_config('cachet.tenant', $1, false), set_config('cachet.admin', $2, false),
		set_config('role', $3, false)`, p.Tenant, admin, role); err != nil {
		// A connection that cannot be scoped is not handed out.
		return false, fmt.Errorf("postgres: scoping a connection to tenant %q: %w", p.Tenant, err)
	}
	data[scopeKey] = scope
	return true, nil
}

// scopeKey is where a connection remembers its scope (pgconn's custom data).
const scopeKey = "cachet.scope"

// OpenDB connects a pool to an already-migrated database and checks that it answers.
func OpenDB(ctx context.Context, databaseURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		return pgxvec.RegisterTypes(ctx, conn)
	}
	cfg.PrepareConn = scopeToPrincipal
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, describeConnError(databaseURL, err)
	}
	return &DB{Pool: pool}, nil
}

// MigrateAndOpen is the service's start-up path: migrations first, then the pool.
func MigrateAndOpen(ctx context.Context, databaseURL string) (*DB, error) {
	applied, err := Migrate(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	if !applied.Empty() {
		slog.InfoContext(ctx, "postgres migrations applied", "versions", applied.Cachet, "job_queue_versions", applied.River)
	}
	return OpenDB(ctx, databaseURL)
}

// Check reports whether the database answers (used by /readyz).
func (d *DB) Check(ctx context.Context) error { return d.Pool.Ping(ctx) }

// Close releases every connection.
func (d *DB) Close() { d.Pool.Close() }

// describeConnError turns a connection failure into one line that names the likely fix.
func describeConnError(databaseURL string, err error) error {
	where := redactURL(databaseURL)
	var netErr *net.OpError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return fmt.Errorf("postgres: database in %s does not exist; create it or fix --database-url: %w", where, err)
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"):
		return fmt.Errorf("postgres: authentication failed for %s; fix the user/password in --database-url: %w", where, err)
	case errors.As(err, &netErr) || strings.Contains(err.Error(), "connect: connection refused"):
		return fmt.Errorf("postgres: cannot reach %s; start it with 'make services-up' or fix --database-url: %w", where, err)
	default:
		return fmt.Errorf("postgres: cannot connect to %s: %w", where, err)
	}
}

func redactURL(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "the configured database"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
