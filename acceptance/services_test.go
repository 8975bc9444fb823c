package acceptance_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet/internal/testenv"
)

// privateServices are a Postgres and an S3 server of one test's own, which it may stop and start while
// the rest of the suite keeps using the shared ones.
type privateServices struct {
	pgBin, pgData, pgPort string
	dir                   string
	vgw, s3Dir, s3Addr    string
	vgwCmd                *exec.Cmd
}

// startPrivateServices initialises and starts both in a scratch directory, removed at the end.
func startPrivateServices(t *testing.T) *privateServices {
	t.Helper()
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the postgres user (installed with Postgres): %v", err)
	}
	dir, err := os.MkdirTemp("/tmp", "cachet-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	s := &privateServices{pgBin: testenv.PostgresBin(), pgData: filepath.Join(dir, "pg"), dir: dir,
		pgPort: portOf(t, freePort(t)), vgw: testenv.VersityGW(), s3Dir: filepath.Join(dir, "s3"), s3Addr: freePort(t)}
	for _, d := range []string{s.pgData, s.s3Dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.pgData, uid, gid); err != nil {
		t.Fatal(err)
	}
	s.asPostgres(t, "initdb", "-D", s.pgData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	s.startPostgres(t)
	t.Cleanup(func() {
		_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(s.pgBin, "pg_ctl"), "-D", s.pgData, "-m", "immediate", "stop").Run()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE cachet`); err != nil {
		t.Fatal(err)
	}
	s.startS3(t)
	t.Cleanup(func() { s.stopS3(t) })
	return s
}

func portOf(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func (s *privateServices) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", s.pgPort, db)
}

func (s *privateServices) asPostgres(t *testing.T, tool string, args ...string) {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(s.pgBin, tool)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

func (s *privateServices) startPostgres(t *testing.T) {
	t.Helper()
	s.asPostgres(t, "pg_ctl", "-D", s.pgData, "-l", filepath.Join(s.dir, "postgres.log"), "-w", "-t", "60", "start",
		"-o", fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -k %s", s.pgPort, s.dir))
}

// stopPostgres stops it as a crash would: no checkpoint, every connection cut.
func (s *privateServices) stopPostgres(t *testing.T) {
	t.Helper()
	s.asPostgres(t, "pg_ctl", "-D", s.pgData, "-m", "immediate", "-w", "stop")
}

func (s *privateServices) startS3(t *testing.T) {
	t.Helper()
	s.vgwCmd = exec.Command(s.vgw, "--access", "faults", "--secret", "faults-secret-key", "--port", s.s3Addr, "posix", s.s3Dir)
	if err := s.vgwCmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", s.s3Addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the private S3 server did not start")
}

// stopS3 kills it: requests in flight are cut.
func (s *privateServices) stopS3(t *testing.T) {
	t.Helper()
	if s.vgwCmd == nil || s.vgwCmd.Process == nil {
		return
	}
	_ = s.vgwCmd.Process.Kill()
	_ = s.vgwCmd.Wait()
	s.vgwCmd = nil
}
