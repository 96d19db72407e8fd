#!/usr/bin/env bash
# stop.sh DIR stops the PostgreSQL that start.sh started in DIR and removes DIR.
#
# Safe to run more than once, on a half-made DIR, and concurrently with the
# watchdog (which itself runs stop.sh). The data is thrown away, so the server is
# stopped with "-m immediate": no checkpoint, no waiting for clients.
#
# Environment: STOP_KEEP_DIR=1 stops the server but leaves DIR in place.
set -euo pipefail

log() { printf 'postgres/stop.sh: %s\n' "$*" >&2; }

[[ $# -eq 1 ]] || {
	echo "usage: stop.sh DIR" >&2
	exit 2
}
[[ -d $1 ]] || exit 0
dir=$(cd -- "$1" && pwd)

as_server() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The watchdog first (unless it is the one running us), so that it does not run a
# second stop.sh once its owner exits.
if [[ -f $dir/watchdog.pid ]]; then
	read -r stat </proc/$$/stat
	read -r _ _ own_pgid _ <<<"${stat##*) }"
	read -r wd <"$dir/watchdog.pid" || wd=
	if [[ $wd =~ ^[0-9]+$ && $wd -gt 1 && $wd != "$own_pgid" ]]; then
		kill -KILL -- "-$wd" 2>/dev/null || true
	fi
fi

if [[ -f $dir/data/postmaster.pid ]]; then
	bin=
	[[ -f $dir/bin ]] && read -r bin <"$dir/bin"
	stopped=0
	if [[ -n $bin && -x $bin/pg_ctl ]] &&
		as_server "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
		stopped=1
	fi
	if [[ $stopped -eq 0 && -f $dir/data/postmaster.pid ]]; then
		# pg_ctl could not do it (a missing binary, a damaged data dir): kill the
		# postmaster named in postmaster.pid, if it still is a postgres process.
		read -r pid <"$dir/data/postmaster.pid" || pid=
		if [[ $pid =~ ^[0-9]+$ && $pid -gt 1 ]] && [[ -r /proc/$pid/cmdline ]] &&
			tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$dir/data"; then
			log "pg_ctl stop failed; killing postmaster $pid"
			kill -QUIT "$pid" 2>/dev/null || true
			for _ in $(seq 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.05
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
fi

if [[ ${STOP_KEEP_DIR:-0} != 1 ]]; then
	rm -rf -- "$dir"
fi
