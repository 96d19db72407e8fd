#!/usr/bin/env bash
# start.sh [DIR] starts a private, throw-away PostgreSQL for hlbridge's tests.
#
# It installs Debian's postgresql package when no server binaries are found (as
# root, once, serialised with flock like testdata/wordpress/start.sh), then runs
# a cluster of its own in DIR (a new mktemp -d when DIR is not given):
#
#   DIR/data/          the cluster (initdb), owned by the user the server runs as
#   DIR/postgres.log   the server's log (DIR/pg_ctl.log: pg_ctl's own complaints)
#   DIR/url            one line: the database URL for the tests, e.g.
#                      postgres://postgres@127.0.0.1:PORT/hlbridge_test?sslmode=disable
#   DIR/postgres.env   shell-sourceable HLBRIDGE_TEST_POSTGRES=... (the same URL)
#   DIR/bin            one line: the PostgreSQL bin directory used (for stop.sh)
#   DIR/watchdog.pid   the watchdog's process-group id (with PG_TEST_OWNER_PID)
#
# The server listens on 127.0.0.1 only (its Unix socket is in DIR, never in
# /var/run/postgresql), trusts every local connection, and keeps nothing it
# needs to survive a crash: fsync, full-page writes and synchronous commit are off.
# PostgreSQL refuses to run as root, so as root it runs as the "postgres" system
# user (created by Debian's package) through runuser; as any other user, as that user.
#
# Environment (all optional):
#   PG_TEST_PORT          TCP port on 127.0.0.1 (default: a free one)
#   PG_TEST_OWNER_PID     when this process exits, the server is stopped and DIR
#                         removed (a watchdog, so a killed test run leaks nothing)
#   PG_TEST_WAIT_SECONDS  how long to wait for the server to answer (90)
#
# Progress goes to stderr; the last line of stdout is DIR (as with
# testdata/wordpress/start.sh), and the URL is in DIR/url. Stop with stop.sh DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
started_at=$(date +%s%N)
wait_seconds=${PG_TEST_WAIT_SECONDS:-90}
db_name=hlbridge_test

log() { printf 'postgres/start.sh: %s\n' "$*" >&2; }
die() {
	printf 'postgres/start.sh: error: %s\n' "$*" >&2
	exit 1
}
elapsed() { printf '%d ms' $((($(date +%s%N) - started_at) / 1000000)); }

# ---------------------------------------------------------------------------
# Packages.
# ---------------------------------------------------------------------------

# pg_bin prints the bin directory of the newest PostgreSQL installed from Debian's
# packages (/usr/lib/postgresql/VERSION/bin), or nothing.
pg_bin() {
	local d best=
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/psql ]] || continue
		if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1) == "$d" ]]; then
			best=$d
		fi
	done
	[[ -n $best ]] && printf '%s\n' "$best"
	return 0
}

install_packages() {
	[[ -n $(pg_bin) ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and this is not root: apt-get install postgresql"
	command -v flock >/dev/null 2>&1 || die "flock (util-linux) is needed to serialise the package install"
	# The same lock as testdata/wordpress/start.sh: one apt run of ours at a time.
	local lock=/tmp/hlbridge-wordpress-apt.lock t0
	exec 9>"$lock"
	log "waiting for the package lock $lock"
	flock 9
	if [[ -z $(pg_bin) ]]; then
		t0=$(date +%s)
		log "installing postgresql"
		export DEBIAN_FRONTEND=noninteractive
		local apt_opts=(-qq -o DPkg::Lock::Timeout=300)
		apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed"
		# Note: Debian's package also creates (and, where services may start,
		# starts) its own "main" cluster on port 5432; this script never uses it.
		apt-get "${apt_opts[@]}" install -y --no-install-recommends postgresql >&2 ||
			die "apt-get install postgresql failed"
		log "postgresql installed in $(($(date +%s) - t0)) s"
	fi
	flock -u 9
	exec 9>&-
	[[ -n $(pg_bin) ]] || die "still no PostgreSQL in /usr/lib/postgresql/*/bin after the install"
}

# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------

# as_server CMD... runs CMD as the user the server runs as.
as_server() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# free_port asks the kernel for a free TCP port on 127.0.0.1 (perl-base is on every
# Debian). Another process may take it before the server binds it: see the retries.
free_port() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp", Listen => 1)
			or die "no free port: $!\n";
		print $s->sockport, "\n";'
}

# random_token N prints N random characters out of a-z0-9 (no "tr </dev/urandom |
# head": with pipefail, tr's SIGPIPE would fail the script).
random_token() {
	local s
	s=$(LC_ALL=C tr -dc 'a-z0-9' < <(head -c 4096 /dev/urandom))
	printf '%s' "${s:0:$1}"
}

# ---------------------------------------------------------------------------
# Cleanup on failure.
# ---------------------------------------------------------------------------

ok=0
created_dir=0
on_exit() {
	local rc=$?
	[[ $ok -eq 1 ]] && return 0
	[[ -n ${dir:-} && -d ${dir:-} ]] || exit "$rc"
	if [[ -s $dir/postgres.log ]]; then
		log "last lines of $dir/postgres.log:"
		tail -n 20 "$dir/postgres.log" >&2 || true
	fi
	if [[ $created_dir -eq 1 ]]; then
		log "cleaning up $dir"
		"$here/stop.sh" "$dir" >&2 || true
	else
		log "stopping what was started in $dir (left in place for inspection)"
		STOP_KEEP_DIR=1 "$here/stop.sh" "$dir" >&2 || true
	fi
	exit "$rc"
}
trap on_exit EXIT

# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------

install_packages
bin=$(pg_bin)
if [[ $(id -u) -eq 0 ]]; then
	id postgres >/dev/null 2>&1 || die "there is no 'postgres' system user to run the server as (Debian's postgresql package creates it)"
	command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run the server as 'postgres'"
fi

if [[ $# -gt 1 ]]; then
	die "usage: start.sh [DIR]"
elif [[ $# -eq 1 ]]; then
	mkdir -p -- "$1"
	dir=$(cd -- "$1" && pwd)
	if [[ -f $dir/url ]] && [[ -f $dir/data/postmaster.pid ]] &&
		as_server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		log "$dir already runs a server for $(cat "$dir/url")"
		ok=1
		echo "$dir"
		exit 0
	fi
	if [[ -n $(ls -A -- "$dir") ]]; then
		dir_keep=$dir
		dir=
		die "$dir_keep is not empty (run stop.sh on it first)"
	fi
else
	dir=$(mktemp -d "${TMPDIR:-/tmp}/hlbridge-pg.XXXXXX")
	created_dir=1
fi
# A Unix socket path holds at most 107 bytes: DIR/.s.PGSQL.PORT.
if [[ ${#dir} -gt 90 ]]; then
	dir_keep=$dir
	[[ $created_dir -eq 1 ]] && rmdir "$dir"
	dir=
	die "$dir_keep is too long a path for PostgreSQL's socket (at most 90 characters)"
fi
chmod 700 "$dir"
echo "$bin" >"$dir/bin"
if [[ $(id -u) -eq 0 ]]; then
	# The server's user must own DIR (for the socket, the log and data/).
	chown postgres: "$dir" "$dir/bin"
	# ...and reach it: every directory above DIR must be searchable by it.
	as_server test -x "$dir" || die "the 'postgres' user cannot reach $dir (set TMPDIR to a world-searchable directory)"
fi
if [[ -n ${PG_TEST_OWNER_PID:-} ]]; then
	# tail --pid returns when the owner exits; then the server is stopped and DIR
	# removed. It starts before the server, so that nothing leaks when the owner is
	# killed while this script runs (with it, say, by a kill of its process group).
	# setsid gives the watchdog a process group of its own (its id, since a
	# background child of a script is no group leader), which stop.sh kills.
	# shellcheck disable=SC2016 # positional parameters of the inner bash
	setsid bash -c 'tail --pid="$1" -f /dev/null; exec "$2" "$3"' watchdog \
		"$PG_TEST_OWNER_PID" "$here/stop.sh" "$dir" </dev/null >/dev/null 2>&1 &
	echo "$!" >"$dir/watchdog.pid"
fi

log "initialising a cluster in $dir/data with $bin"

# C locale: always available, and the tests must not depend on the machine's.
as_server "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
	--no-sync >"$dir/initdb.log" 2>&1 || {
	tail -n 20 "$dir/initdb.log" >&2
	die "initdb failed (see $dir/initdb.log)"
}
log "cluster initialised ($(elapsed))"

port=${PG_TEST_PORT:-}
[[ -n $port ]] || port=$(free_port)
for attempt in 1 2 3 4 5; do
	# -w waits until the server accepts connections; pg_ctl starts it in a session
	# of its own (setsid), so it outlives this script and ignores our terminal.
	if as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$wait_seconds" \
		-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
		start >/dev/null 2>"$dir/pg_ctl.log"; then
		break
	fi
	# A port picked by free_port may have been taken in between: try another.
	if [[ -n ${PG_TEST_PORT:-} || $attempt -ge 5 ]] ||
		! grep -qs 'could not bind\|could not create any TCP/IP sockets' "$dir/postgres.log"; then
		cat "$dir/pg_ctl.log" >&2 || true
		die "the server did not start on 127.0.0.1:$port (see $dir/postgres.log)"
	fi
	log "port $port was taken, trying another one"
	as_server "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	port=$(free_port)
done
log "PostgreSQL ready on 127.0.0.1:$port ($(elapsed))"

"$bin/psql" -X -q -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
	-c "CREATE DATABASE $db_name" >&2 || die "cannot create database $db_name"

url="postgres://postgres@127.0.0.1:$port/$db_name?sslmode=disable"
echo "$url" >"$dir/url"
printf "HLBRIDGE_TEST_POSTGRES='%s'\n" "$url" >"$dir/postgres.env"

ok=1
log "database $db_name ready in $(elapsed)"
echo "$dir"
