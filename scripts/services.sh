#!/usr/bin/env bash
# Starts/stops the services Cachet needs, on loopback ports, with data and logs under the state dir:
#   Postgres 17 + pgvector  ($CACHET_STATE/postgres, log $CACHET_STATE/log/postgres.log)
#   versitygw (S3 API)      ($CACHET_STATE/s3,       log $CACHET_STATE/log/versitygw.log)
# usage: services.sh up | down | status
#   `up` prints "started" when it started anything, so callers can stop only what they started.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PGDATA=$CACHET_STATE/postgres
PGRUN=$CACHET_STATE/run
LOGS=$CACHET_STATE/log
S3DIR=$CACHET_STATE/s3
VGW_PID=$CACHET_STATE/run/versitygw.pid
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin

# The Postgres server refuses to run as root; run it as the packages' postgres user.
as_postgres() { CACHET_ENV_FOR=services in_env runuser -u postgres -- "$@"; }

pg_running() { as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
vgw_running() { [ -f "$VGW_PID" ] && kill -0 "$(cat "$VGW_PID")" 2>/dev/null; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_up() {
	pg_running && return 1
	mkdir -p "$PGRUN" "$LOGS"
	if [ ! -f "$PGDATA/PG_VERSION" ]; then
		say "initialising Postgres data in $PGDATA"
		rm -rf "$PGDATA"; mkdir -p "$PGDATA"
		chown "$(in_env id -u postgres):$(in_env id -g postgres)" "$PGDATA"
		as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1 ||
			die "initdb failed (log: $LOGS/initdb.log)"
	fi
	port_free "$PG_PORT" || die "port $PG_PORT is taken by another program; set CACHET_PG_PORT to a free port"
	chown "$(in_env id -u postgres)" "$PGRUN" "$LOGS"; touch "$LOGS/postgres.log"; chown "$(in_env id -u postgres)" "$LOGS/postgres.log"
	as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" -w -t 60 start \
		-o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PGRUN -c maintenance_work_mem=512MB" >/dev/null ||
		die "Postgres did not start (log: $LOGS/postgres.log)"
	# Roles and databases for the service (cachet) and the test suite (cachet_test); both idempotent.
	local psql=(as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -v ON_ERROR_STOP=1)
	"${psql[@]}" -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='cachet') THEN CREATE ROLE cachet LOGIN SUPERUSER; END IF; END\$\$;"
	for db in cachet cachet_test; do
		[ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$db'")" = 1 ] || "${psql[@]}" -c "CREATE DATABASE $db OWNER cachet"
	done
	return 0
}

vgw_up() {
	vgw_running && return 1
	mkdir -p "$S3DIR" "$LOGS" "$(dirname "$VGW_PID")"
	port_free "$S3_PORT" || die "port $S3_PORT is taken by another program; set CACHET_S3_PORT to a free port"
	[ -x "$CACHET_TOOLS/versitygw" ] || die "versitygw is not installed: run 'make toolchain'"
	nohup "$CACHET_TOOLS/versitygw" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" \
		--port "127.0.0.1:$S3_PORT" posix "$S3DIR" >>"$LOGS/versitygw.log" 2>&1 </dev/null &
	echo $! >"$VGW_PID"
	for _ in $(seq 50); do
		port_free "$S3_PORT" || return 0
		vgw_running || break
		sleep 0.1
	done
	die "versitygw did not start (log: $LOGS/versitygw.log)"
}

up() {
	local started=0
	pg_up && started=1
	vgw_up && started=1
	[ $started = 1 ] && echo started || true
}

down() {
	if pg_running; then as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; say "stopped Postgres"; fi
	if vgw_running; then
		kill "$(cat "$VGW_PID")"
		for _ in $(seq 50); do vgw_running || break; sleep 0.1; done
		say "stopped versitygw"
	fi
	rm -f "$VGW_PID"
}

status() {
	pg_running && echo "postgres: running on 127.0.0.1:$PG_PORT (data $PGDATA)" || echo "postgres: stopped"
	vgw_running && echo "versitygw: running on 127.0.0.1:$S3_PORT (data $S3DIR)" || echo "versitygw: stopped"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) die "usage: services.sh up|down|status" ;;
esac
