#!/usr/bin/env bash
# test.sh runs hlbridge's tests: the one command for a fresh machine and for CI.
#
#   ./test.sh                          go vet ./..., a short -fuzz run of every fuzz
#                                      target, and go test ./... (everything)
#   ./test.sh -run TestVerify ./wordpress/
#                                      only the tests named, in the packages named
#   ./test.sh -v -race                 every package, with these go test flags
#
# Arguments go to `go test` as they are, after `-count=1 -timeout 15m` (so a
# -count or -timeout of yours wins). Package patterns are the arguments that
# start with "./" or "../" (or are "." or ".."): when you give any, they replace
# ./... for go vet and go test; when you give none, ./... is used. Write a flag's
# value that looks like a path with "=" (-coverprofile=./c.out), or it is taken
# for a package.
#
# Before the tests it starts what they need, and stops it all on exit (also on
# Ctrl-C, TERM or a failure):
#  - one shared WordPress, from testdata/wordpress/start.sh (which installs the
#    Debian packages it needs), exported as WORDPRESS_TEST_SITE=DIR so that every
#    test package reuses it. An already set WORDPRESS_TEST_SITE is used as it is.
#  - a PostgreSQL database, exported as HLBRIDGE_TEST_POSTGRES=postgres://...:
#     1. HLBRIDGE_TEST_POSTGRES already set: used as it is (not created, not dropped);
#     2. a server answering on 127.0.0.1:5432 (HLBRIDGE_TEST_PG_PROBE_PORT) that
#        lets user postgres in without a password: a fresh database
#        hlbridge_test_<time>_<random> is created there and dropped on exit;
#     3. otherwise: testdata/postgres/start.sh runs a private cluster (installing
#        Debian's postgresql when missing) on a free port, removed on exit.
#
# Everything of a run lives in one private directory, exported as TMPDIR for the
# tests too (${TMPDIR:-/tmp}/hlbridge-test.XXXXXX): on exit, whatever still runs from
# it (say, a WordPress that an interrupted test started) is ended and it is removed.
# A run killed with SIGKILL leaves it behind; the next run cleans it up.
#
# The exit code is go test's; when the tests pass but fuzzing or go vet failed, theirs.
# (A vet failure does not stop the tests: a package one engineer is midway through
# should not hide the results of the others.)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
t_start=$(date +%s)

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
	printf 'test.sh: error: %s\n' "$*" >&2
	exit 1
}
since() { printf '%d s' $(($(date +%s) - $1)); }

# The official tarball's place, for shells whose PATH lacks it.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 ||
	die "Go is not installed (or not on PATH): install Go $(sed -n 's/^go //p' go.mod) or newer from https://go.dev/dl/"

# ---------------------------------------------------------------------------
# Arguments.
# ---------------------------------------------------------------------------

pkgs=()
for arg in "$@"; do
	case $arg in
	./* | ../* | . | ..) pkgs+=("$arg") ;;
	esac
done
go_test_args=("$@")
# A run of the whole suite (no package named, no -run, -bench or -fuzz) also fuzzes
# each fuzz target briefly; a targeted run does not.
fuzz_all=1
for arg in "$@"; do
	case $arg in
	./* | ../* | . | .. | -run | -run=* | -test.run* | -bench* | -test.bench* | -fuzz* | -test.fuzz*) fuzz_all=0 ;;
	esac
done
if [[ ${#pkgs[@]} -eq 0 ]]; then
	pkgs=(./...)
	go_test_args+=(./...)
fi

# ---------------------------------------------------------------------------
# Cleanup: whatever was started is stopped, whichever way this script ends.
# ---------------------------------------------------------------------------

go_pid=        # the running go command
run_dir=       # this run's private directory (TMPDIR for everything below)
wp_dir=        # the WordPress this script started
pg_dir=        # the private PostgreSQL this script started
pg_admin_url=  # the server on which this script created pg_db
pg_db=

# Safety net: a WordPress or PostgreSQL that a test starts with start.sh and fails to
# stop (say, when the test binary is killed) is torn down by its watchdog once this
# script exits. Tests that name an owner of their own (wordpresstest does) override it.
export WP_TEST_OWNER_PID=$$ PG_TEST_OWNER_PID=$$

# shellcheck disable=SC2317 # descendants, stop_go and cleanup run from the traps
# descendants PID prints the processes below PID (children before grandchildren).
descendants() {
	local f line pid ppid rest queue=("$1") kids
	declare -A children=()
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		pid=${f#/proc/}
		pid=${pid%/stat}
		rest=${line##*) }
		read -r _ ppid _ <<<"$rest"
		children[$ppid]+=" $pid"
	done
	while [[ ${#queue[@]} -gt 0 ]]; do
		read -r -a kids <<<"${children[${queue[0]}]:-}"
		queue=("${queue[@]:1}")
		[[ ${#kids[@]} -gt 0 ]] || continue
		printf '%s\n' "${kids[@]}"
		queue+=("${kids[@]}")
	done
}

# shellcheck disable=SC2317
# running PID succeeds when PID is a process that has not ended (a zombie has: when
# it is reaped depends on its parent, or on whoever is PID 1).
running() {
	local line state
	read -r line 2>/dev/null </proc/"$1"/stat || return 1
	read -r state _ <<<"${line##*) }"
	[[ $state != Z ]]
}

# shellcheck disable=SC2317
# stop_go ends the running go command and everything below it (the compiler, test
# binaries, what the tests started), if any, the way a Ctrl-C would: SIGINT first,
# which go test handles and on which start.sh scripts clean up after themselves (a
# TERM would kill them without it); SIGKILL for whatever is left after 15 s.
stop_go() {
	[[ -n $go_pid ]] || return 0
	local pids alive p
	mapfile -t pids < <(echo "$go_pid"; descendants "$go_pid")
	kill -INT "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 300); do
		alive=0
		for p in "${pids[@]}"; do
			running "$p" && alive=1 && break
		done
		[[ $alive -eq 1 ]] || break
		sleep 0.05
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait "$go_pid" 2>/dev/null || true
	go_pid=
}

# shellcheck disable=SC2317
# sweep DIR ends every process whose command line names a path in DIR: what
# tests started there and did not stop. TERM, then KILL after 5 s.
sweep() {
	local dir=$1 f pid args pids=() alive p
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid != "$$" ]] || continue
		mapfile -d '' -t args 2>/dev/null <"$f" || continue
		[[ " ${args[*]} " == *"$dir/"* ]] && pids+=("$pid")
	done
	[[ ${#pids[@]} -gt 0 ]] || return 0
	log "ending ${#pids[@]} leftover process(es) running from $dir"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		alive=0
		for p in "${pids[@]}"; do
			running "$p" && alive=1 && break
		done
		[[ $alive -eq 1 ]] || break
		sleep 0.05
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
}

# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	stop_go
	if [[ -n $wp_dir ]]; then
		testdata/wordpress/stop.sh "$wp_dir" || log "stopping the WordPress in $wp_dir failed"
	fi
	if [[ -n $pg_dir ]]; then
		testdata/postgres/stop.sh "$pg_dir" || log "stopping the PostgreSQL in $pg_dir failed"
	fi
	if [[ -n $pg_db ]]; then
		psql -X -q -w -d "$pg_admin_url" -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null ||
			log "could not drop database $pg_db"
	fi
	if [[ -n $run_dir ]]; then
		sweep "$run_dir"
		rm -rf -- "$run_dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
# A signal ends the script through cleanup, which first ends the go command.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The private directory. Directories of earlier runs whose test.sh is gone (killed
# with SIGKILL) are swept first; those of runs still going are left alone.
tmp_root=${TMPDIR:-/tmp}
for d in "$tmp_root"/hlbridge-test.*; do
	[[ -d $d && -f $d/owner ]] || continue
	read -r owner <"$d/owner" || owner=
	if [[ $owner =~ ^[0-9]+$ ]] && [[ -r /proc/$owner/cmdline ]] &&
		[[ $(tr '\0' ' ' <"/proc/$owner/cmdline") == *test.sh* ]]; then
		continue
	fi
	log "cleaning up $d, left by a run that was killed"
	sweep "$d"
	rm -rf -- "$d"
done
run_dir=$(mktemp -d "$tmp_root/hlbridge-test.XXXXXX")
# Searchable by all: the private PostgreSQL runs as user postgres under it.
chmod 711 "$run_dir"
echo "$$" >"$run_dir/owner"
export TMPDIR=$run_dir

# run_go ARGS... runs go ARGS and waits for it. It runs in the background, because
# `wait` (unlike a foreground command) lets a signal run the traps at once. It stays
# in this script's process group, so that whoever kills the group kills it too.
# Bash starts background commands with SIGINT and SIGQUIT ignored, which the tests
# would inherit (go test sends SIGQUIT to a test binary that overran -timeout, and
# tests may signal processes they start): env --default-signal undoes that.
run_go() {
	local rc=0
	env --default-signal=INT,QUIT go "$@" </dev/null &
	go_pid=$!
	wait "$go_pid" || rc=$?
	go_pid=
	return "$rc"
}

# ---------------------------------------------------------------------------
# go vet first: it is quick, and needs no services.
# ---------------------------------------------------------------------------

log "$(go version); go vet ${pkgs[*]}"
t=$(date +%s)
vet_rc=0
run_go vet "${pkgs[@]}" || vet_rc=$?
if [[ $vet_rc -ne 0 ]]; then
	# The tests still run, so that one broken package hides nothing else; the run
	# fails all the same (see the end).
	log "go vet FAILED (exit $vet_rc) in $(since "$t"); running the tests anyway"
else
	log "go vet passed ($(since "$t"))"
fi

# ---------------------------------------------------------------------------
# WordPress.
# ---------------------------------------------------------------------------

if [[ -n ${WORDPRESS_TEST_SITE:-} ]]; then
	log "using the WordPress in WORDPRESS_TEST_SITE=$WORDPRESS_TEST_SITE"
else
	t=$(date +%s)
	# The directory is made here, not by start.sh, so that cleanup knows it even when
	# a signal comes while start.sh runs.
	wp_dir=$(mktemp -d "$run_dir/hlbridge-wp.XXXXXX")
	testdata/wordpress/start.sh "$wp_dir" >/dev/null || die "testdata/wordpress/start.sh failed"
	[[ -f $wp_dir/site.env ]] || die "testdata/wordpress/start.sh made no site in $wp_dir"
	export WORDPRESS_TEST_SITE=$wp_dir
	log "WordPress ready in $wp_dir ($(since "$t"))"
fi

# ---------------------------------------------------------------------------
# PostgreSQL.
# ---------------------------------------------------------------------------

probe_port=${HLBRIDGE_TEST_PG_PROBE_PORT:-5432}

# random_token N prints N random characters out of a-z0-9.
random_token() {
	local s
	s=$(LC_ALL=C tr -dc 'a-z0-9' < <(head -c 4096 /dev/urandom))
	printf '%s' "${s:0:$1}"
}

# drop_stale_databases drops databases that a killed run of this script left on the
# shared server: their names carry their creation time, and no run lives 3 hours.
drop_stale_databases() {
	local name created now
	now=$(date +%s)
	while read -r name; do
		[[ $name =~ ^hlbridge_test_([0-9]{10})_[a-z0-9]{6}$ ]] || continue
		created=${BASH_REMATCH[1]}
		((now - created > 3 * 3600)) || continue
		log "dropping stale database $name"
		psql -X -q -w -d "$pg_admin_url" -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
	done < <(psql -X -q -w -At -d "$pg_admin_url" -c "SELECT datname FROM pg_database WHERE datname LIKE 'hlbridge\_test\_%'" 2>/dev/null || true)
}

# use_shared_server creates a database on the server at 127.0.0.1:$probe_port;
# it fails (quietly) when there is none or it does not let user postgres in.
use_shared_server() {
	command -v pg_isready >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || return 1
	pg_isready -q -h 127.0.0.1 -p "$probe_port" -t 3 || return 1
	local admin="postgres://postgres@127.0.0.1:$probe_port/postgres?sslmode=disable&connect_timeout=5"
	local db
	db="hlbridge_test_$(date +%s)_$(random_token 6)"
	# -w: never prompt for a password (CI has no stdin); a server that wants one is
	# not ours to use.
	# Set before CREATE, so that cleanup drops it even when a signal comes meanwhile.
	pg_admin_url=$admin
	pg_db=$db
	if ! psql -X -q -w -d "$admin" -c "CREATE DATABASE \"$db\"" >/dev/null 2>&1; then
		pg_admin_url='' pg_db=''
		return 1
	fi
	export HLBRIDGE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$probe_port/$db?sslmode=disable"
	drop_stale_databases
}

t=$(date +%s)
if [[ -n ${HLBRIDGE_TEST_POSTGRES:-} ]]; then
	log "using the PostgreSQL in HLBRIDGE_TEST_POSTGRES"
elif use_shared_server; then
	log "PostgreSQL: created database $pg_db on 127.0.0.1:$probe_port ($(since "$t"))"
else
	log "no usable PostgreSQL on 127.0.0.1:$probe_port: starting a private one"
	pg_dir=$(mktemp -d "$run_dir/hlbridge-pg.XXXXXX")
	testdata/postgres/start.sh "$pg_dir" >/dev/null || die "testdata/postgres/start.sh failed"
	[[ -f $pg_dir/url ]] || die "testdata/postgres/start.sh made no server in $pg_dir"
	HLBRIDGE_TEST_POSTGRES=$(<"$pg_dir/url")
	export HLBRIDGE_TEST_POSTGRES
	log "PostgreSQL: private server in $pg_dir ($(since "$t"))"
fi

# ---------------------------------------------------------------------------
# The tests. go test's own output comes last: its closing lines are the summary.
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Fuzzing: on a whole-suite run, each fuzz target runs HLBRIDGE_FUZZTIME inputs
# (10000x: a few seconds each) beyond its seed corpus (which plain go test runs
# anyway). First, because go test's own output should come last. A crasher is
# written to the package's testdata/fuzz/ and fails the run. The budget is a
# count, not a duration: with a duration, Go's fuzzing coordinator can race its
# own deadline on a loaded machine and fail a target with a bare "context
# deadline exceeded" and no crasher (seen here in CI); a count has no deadline.
# ---------------------------------------------------------------------------

setup_took=$(since "$t_start")
fuzz_rc=0
if [[ $fuzz_all -eq 1 ]]; then
	fuzztime=${HLBRIDGE_FUZZTIME:-10000x}
	t=$(date +%s)
	while IFS=: read -r file name; do
		dir=./$(dirname "${file#./}")
		log "fuzzing $name in $dir ($fuzztime)"
		run_go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$dir" || fuzz_rc=$?
	done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's/func //' | sort)
	if [[ $fuzz_rc -ne 0 ]]; then
		log "fuzzing FAILED (exit $fuzz_rc) in $(since "$t"); running the tests anyway"
	else
		log "fuzzing passed ($(since "$t"))"
	fi
fi

log "setup took $setup_took; go test -count=1 -timeout 15m ${go_test_args[*]}"
test_rc=0
run_go test -count=1 -timeout 15m "${go_test_args[@]}" || test_rc=$?
if [[ $test_rc -eq 0 && $fuzz_rc -ne 0 ]]; then
	# Said on stderr, so that go test's closing line stays the last on stdout.
	echo "test.sh: the tests passed but fuzzing failed (see above)" >&2
	exit "$fuzz_rc"
fi
if [[ $test_rc -eq 0 && $vet_rc -ne 0 ]]; then
	echo "test.sh: the tests passed but go vet failed (see above)" >&2
	exit "$vet_rc"
fi
exit "$test_rc"
