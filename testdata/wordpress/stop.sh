#!/usr/bin/env bash
# stop.sh DIR stops the test WordPress that start.sh started in DIR: it kills every
# process group listed in DIR/pids (the PHP server with its workers, the private
# MariaDB, the watchdog) and that of every process still serving the site (found
# by its command line, so also when DIR/pids or DIR itself is gone), drops the
# database it created on WP_TEST_DB_HOST if it used one, and removes DIR (kept
# when STOP_KEEP_DIR=1).
set -euo pipefail

log() { printf 'stop.sh: %s\n' "$*" >&2; }
die() {
	printf 'stop.sh: error: %s\n' "$*" >&2
	exit 1
}

[[ $# -eq 1 && -n $1 ]] || die "usage: stop.sh DIR"
dir=$1
if [[ -d $dir ]]; then
	dir=$(cd -- "$dir" && pwd)
	# Never remove a folder start.sh did not make.
	[[ -f $dir/pids ]] || die "$dir has no pids file: not a site made by start.sh, leaving it alone"
else
	# The folder is gone (removed by hand, or by whoever removed the
	# directory above it) but its site may still run: its processes are
	# found by the paths they were started with.
	[[ $dir == /* ]] || dir="$PWD/$dir"
	dir=${dir%/}
	log "$dir does not exist: stopping whatever still runs from it"
fi

# Our own process group: when the watchdog runs us, it is one of the groups listed.
read -r stat </proc/$$/stat
read -r _ _ own_pgid _ <<<"${stat##*) }"

# site_groups prints the process groups of the processes that serve the site
# in $dir, found by their command lines: the PHP server and its workers
# (-t DIR/site; a worker outlives a master killed alone, and keeps serving),
# the private MariaDB (--datadir=DIR/db) and the watchdog (its last argument
# is DIR). This finds them even when DIR/pids is gone.
site_groups() {
	local f pid args line arg match
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		mapfile -d '' -t args 2>/dev/null <"$f" || continue
		[[ ${#args[@]} -gt 0 ]] || continue
		match=0
		for arg in "${args[@]}"; do
			[[ $arg == "$dir/site" || $arg == "--datadir=$dir/db" ]] && match=1 && break
		done
		[[ ${args[0]} == bash && ${args[3]:-} == watchdog && ${args[-1]} == "$dir" ]] && match=1
		[[ $match -eq 1 ]] || continue
		read -r line 2>/dev/null </proc/"$pid"/stat || continue
		read -r _ _ pgrp _ <<<"${line##*) }"
		echo "$pgrp"
	done
}

pgids=()
add_group() {
	local pgid=$1 p
	[[ $pgid =~ ^[0-9]+$ && $pgid -gt 1 && $pgid != "$own_pgid" ]] || return 0
	for p in "${pgids[@]}"; do
		[[ $p == "$pgid" ]] && return 0
	done
	pgids+=("$pgid")
}
if [[ -f $dir/pids ]]; then
	while read -r pgid; do
		add_group "$pgid"
	done <"$dir/pids"
fi
while read -r pgid; do
	add_group "$pgid"
done < <(site_groups)

# running_groups prints the process groups that still have a running process.
# Zombies do not count: they hold no port and no file, and how soon they are
# reaped depends on whoever is PID 1 (on some machines, about a second later).
running_groups() {
	local f line state pgrp
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		read -r state _ pgrp _ <<<"${line##*) }"
		[[ $state != Z ]] && echo "$pgrp"
	done | sort -u
}

# alive PGID... succeeds when any of the groups still runs.
alive() {
	local running pgid
	running=$(running_groups)
	for pgid in "$@"; do
		grep -qx -- "$pgid" <<<"$running" && return 0
	done
	return 1
}

for pgid in "${pgids[@]}"; do
	kill -TERM -- "-$pgid" 2>/dev/null || true
done
# MariaDB shuts down cleanly on TERM in well under a second; give everything 5 s.
for _ in $(seq 100); do
	if [[ ${#pgids[@]} -eq 0 ]] || ! alive "${pgids[@]}"; then
		break
	fi
	sleep 0.05
done
for pgid in "${pgids[@]}"; do
	if alive "$pgid"; then
		log "process group $pgid ignored TERM, killing it"
		kill -KILL -- "-$pgid" 2>/dev/null || true
	fi
done

[[ -d $dir ]] || exit 0

if [[ -f $dir/external-db ]]; then
	db_name=$(sed -n 's/^DB_NAME=//p' "$dir/external-db")
	if [[ $db_name =~ ^hlbridge_test_[a-z0-9_]+$ ]]; then
		mariadb --defaults-extra-file="$dir/client.cnf" -e "DROP DATABASE IF EXISTS \`$db_name\`" ||
			log "could not drop database $db_name"
	else
		log "refusing to drop unexpected database name '$db_name'"
	fi
fi

if [[ ${STOP_KEEP_DIR:-0} == 1 ]]; then
	rm -f "$dir/pids"
	: >"$dir/pids"
else
	rm -rf -- "$dir"
fi
