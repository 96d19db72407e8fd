#!/usr/bin/env bash
# start.sh [DIR] starts a real, throw-away WordPress for hlbridge's integration tests.
#
# It installs the Debian packages it needs when they are missing (as root, once,
# serialised with flock so concurrent runs do not race on dpkg), then builds a
# self-contained site in DIR (a new mktemp -d when DIR is not given):
#
#   DIR/db/            private MariaDB data directory (not used with WP_TEST_DB_HOST)
#   DIR/mysql.sock     its socket; the database never listens on TCP
#   DIR/site/          a copy of Debian's WordPress with its own wp-config.php and
#                      the must-use plugins mail-catcher.php and hlbridge-companion.php
#   DIR/mail.jsonl     every mail WordPress sends, one JSON object a line
#   DIR/php.log        the PHP built-in web server's log
#   DIR/site.env       shell-sourceable WORDPRESS_* settings for the tests
#   DIR/pids           the process-group ids stop.sh kills
#   DIR/wp-eval.php    runs PHP in the site's context (see wp-eval.sh)
#   DIR/opcache/       compiled PHP shared by the server and wp-eval.php runs
#
# Environment (all optional):
#   WP_TEST_PORT         TCP port on 127.0.0.1 for the site (default: a free one)
#   WP_TEST_DB_HOST      use this MariaDB/MySQL server ("host", "host:port" or
#   WP_TEST_DB_USER      "localhost:/path/to.sock") instead of a private one;
#   WP_TEST_DB_PASSWORD  a fresh, uniquely named database is created there and
#                        stop.sh drops it
#   WP_TEST_OWNER_PID    when this process exits, the site is stopped and DIR
#                        removed (a watchdog, started before anything else, so
#                        a killed test run leaks nothing, even mid-start)
#   WP_TEST_WAIT_SECONDS how long to wait for MariaDB and PHP to answer (90)
#   WP_TEST_MULTISITE    1: make the site the main site of a multisite network
#                        (subdirectory sites, "admin" its super admin; see
#                        multisite.php), for tests of super admins
#
# Progress goes to stderr; the last line of stdout is DIR. Stop with stop.sh DIR.
# Running start.sh again on a DIR whose site still answers just prints DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
companion="$repo/wordpress/companion/hlbridge-companion.php"
started_at=$(date +%s%N)
# How long to wait for the database and the web server to answer: they take well under
# a second on an idle machine, but a machine busy with parallel test runs can be slow.
wait_seconds=${WP_TEST_WAIT_SECONDS:-90}

log() { printf 'start.sh: %s\n' "$*" >&2; }
die() {
	printf 'start.sh: error: %s\n' "$*" >&2
	exit 1
}
elapsed() { printf '%d ms' $((($(date +%s%N) - started_at) / 1000000)); }

# ---------------------------------------------------------------------------
# Packages.
# ---------------------------------------------------------------------------

# missing_packages prints the Debian packages that still have to be installed.
missing_packages() {
	local pkgs=()
	if ! command -v php >/dev/null 2>&1; then
		pkgs+=(php-cli php-mysql)
	elif ! php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' >/dev/null 2>&1; then
		pkgs+=(php-mysql)
	fi
	[[ -f /usr/share/wordpress/wp-load.php ]] || pkgs+=(wordpress)
	[[ -x /usr/sbin/mariadbd && -x /usr/bin/mariadb-install-db ]] || pkgs+=(mariadb-server)
	printf '%s\n' "${pkgs[@]}"
}

install_packages() {
	local missing
	missing=$(missing_packages)
	[[ -z $missing ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "missing packages ($(echo "$missing" | tr '\n' ' ')) and not root: install them with apt-get"
	command -v flock >/dev/null 2>&1 || die "flock (util-linux) is needed to serialise the package install"

	local lock=/tmp/hlbridge-wordpress-apt.lock t0
	exec 9>"$lock"
	log "waiting for the package lock $lock"
	flock 9
	# Another run may have installed everything while we waited.
	missing=$(missing_packages)
	if [[ -n $missing ]]; then
		t0=$(date +%s)
		# Install the full set, not only what is missing: the php-mysql of the
		# same PHP version as php-cli, and wordpress's own dependencies.
		local pkgs=(wordpress php-cli php-mysql)
		[[ -x /usr/sbin/mariadbd && -x /usr/bin/mariadb-install-db ]] || pkgs+=(mariadb-server)
		log "installing ${pkgs[*]} (missing: $(echo "$missing" | tr '\n' ' '))"
		export DEBIAN_FRONTEND=noninteractive
		# Our flock only orders our own runs; wait for anyone else's apt too.
		local apt_opts=(-qq -o DPkg::Lock::Timeout=300)
		apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed"
		apt-get "${apt_opts[@]}" install -y --no-install-recommends "${pkgs[@]}" >&2 ||
			die "apt-get install ${pkgs[*]} failed"
		log "packages installed in $(($(date +%s) - t0)) s"
	fi
	flock -u 9
	exec 9>&-
	missing=$(missing_packages)
	[[ -z $missing ]] || die "still missing after install: $missing"
}

# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------

# shell_quote prints $1 single-quoted for a shell (and for wordpresstest's parser).
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# php_quote prints $1 as a single-quoted PHP string literal.
php_quote() {
	local s=${1//\\/\\\\}
	printf "'%s'" "${s//\'/\\\'}"
}

# free_port asks the kernel for a free TCP port on 127.0.0.1.
free_port() {
	# shellcheck disable=SC2016 # PHP code, not shell
	php -r '$s = stream_socket_server("tcp://127.0.0.1:0", $errno, $errstr);
if (!$s) { fwrite(STDERR, "$errstr\n"); exit(1); }
$name = stream_socket_get_name($s, false);
echo substr($name, strrpos($name, ":") + 1), "\n";'
}

# http_get URL prints the body of URL (waiting up to 10 s); fails when nothing answers.
http_get() {
	# shellcheck disable=SC2016 # PHP code, not shell
	php -r '$ctx = stream_context_create(["http" => ["timeout" => 10, "ignore_errors" => true]]);
$body = @file_get_contents($argv[1], false, $ctx);
if ($body === false) { exit(1); }
echo $body;' "$1"
}

# random_token N [CHARS] prints N (at most ~200) random characters out of CHARS
# (default a-zA-Z0-9). No "tr </dev/urandom | head": with pipefail, tr's SIGPIPE
# would fail the script.
random_token() {
	local s
	s=$(LC_ALL=C tr -dc "${2:-a-zA-Z0-9}" < <(head -c 4096 /dev/urandom))
	printf '%s' "${s:0:$1}"
}

# start_group CMD... runs CMD in a new session (so its own process group) and
# records the group id in DIR/pids. Callers redirect its output: a background
# process holding our stdout would keep "dir=$(start.sh)" waiting forever.
start_group() {
	setsid "$@" </dev/null &
	local pid=$!
	echo "$pid" >>"$dir/pids"
	last_pid=$pid
}

# start_watchdog starts, when WP_TEST_OWNER_PID is set, the process that runs
# stop.sh DIR once the owner has exited, however it exits (kill -9 included),
# also while this script still builds the site. The owner is known by its pid
# and its start time: pids are reused (pid_max is often 32768), and a watchdog
# that took a newer process for its owner would keep the site forever.
start_watchdog() {
	[[ -n ${WP_TEST_OWNER_PID:-} ]] || return 0
	local line fields
	read -r line 2>/dev/null </proc/"$WP_TEST_OWNER_PID"/stat ||
		die "WP_TEST_OWNER_PID=$WP_TEST_OWNER_PID is not a running process"
	read -r -a fields <<<"${line##*) }"
	# $1 owner pid, $2 its start time (field 22 of /proc/PID/stat, the 20th
	# after the command), $3 stop.sh, $4 DIR. A zombie owner has exited.
	# shellcheck disable=SC2016 # positional parameters of the inner bash
	start_group bash -c 'while read -r l 2>/dev/null </proc/"$1"/stat; do
	read -r -a f <<<"${l##*) }"
	[[ ${f[0]} != Z && ${f[19]} == "$2" ]] || break
	sleep 1
done
exec "$3" "$4"' watchdog "$WP_TEST_OWNER_PID" "${fields[19]}" "$here/stop.sh" "$dir" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# Cleanup on failure.
# ---------------------------------------------------------------------------

ok=0
created_dir=0
on_exit() {
	local rc=$?
	[[ $ok -eq 1 ]] && return 0
	[[ -n ${copy_pid:-} ]] && kill "$copy_pid" 2>/dev/null && wait "$copy_pid" 2>/dev/null
	[[ -n ${dir:-} && -d ${dir:-} ]] || exit "$rc"
	for f in "$dir/php.log" "$dir/mariadb.log"; do
		if [[ -s $f ]]; then
			log "last lines of $f:"
			tail -n 20 "$f" >&2 || true
		fi
	done
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
# A signal mid-way ends the script through on_exit, which stops what was started.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------

install_packages
[[ -f $companion ]] || die "companion plugin not found at $companion"

if [[ $# -gt 1 ]]; then
	die "usage: start.sh [DIR]"
elif [[ $# -eq 1 ]]; then
	mkdir -p -- "$1"
	dir=$(cd -- "$1" && pwd)
	if [[ -f $dir/site.env ]]; then
		url=$(sed -n "s/^WORDPRESS_URL='\(.*\)'$/\1/p" "$dir/site.env")
		if [[ -n $url ]] && http_get "$url/?rest_route=/" >/dev/null; then
			log "$dir already runs a site at $url"
			ok=1
			echo "$dir"
			exit 0
		fi
		dir_keep=$dir
		dir=
		die "$dir_keep holds a site that does not answer: run stop.sh $dir_keep first"
	fi
	if [[ -n $(ls -A -- "$dir") ]]; then
		dir_keep=$dir
		dir=
		die "$dir_keep is not empty"
	fi
else
	dir=$(mktemp -d "${TMPDIR:-/tmp}/hlbridge-wp.XXXXXX")
	created_dir=1
fi
# A Unix socket path holds at most 107 bytes.
if [[ -z ${WP_TEST_DB_HOST:-} && ${#dir} -gt 90 ]]; then
	dir_keep=$dir
	[[ $created_dir -eq 1 ]] && rmdir "$dir"
	dir=
	die "$dir_keep is too long a path for MariaDB's socket (at most 90 characters)"
fi
# The site and DB run as root here; keep the folder private all the same.
chmod 700 "$dir"
: >"$dir/pids"
log "building a WordPress in $dir"
start_watchdog

# The site is a copy of Debian's WordPress, made while the database starts. The
# package has symlinks (wp-config.php and .htaccess into /etc/wordpress, libraries
# into /usr/share/javascript and /usr/share/php); -L makes the copy self-contained.
site="$dir/site"
cp -aL /usr/share/wordpress "$site" &
copy_pid=$!

# Database: a private MariaDB on a socket, or a fresh database on a given server.
db_name=wordpress
db_user=wordpress
db_password=$(random_token 24)
if [[ -n ${WP_TEST_DB_HOST:-} ]]; then
	[[ -n ${WP_TEST_DB_USER:-} ]] || die "WP_TEST_DB_HOST is set but WP_TEST_DB_USER is not"
	db_host=$WP_TEST_DB_HOST
	db_user=$WP_TEST_DB_USER
	db_password=${WP_TEST_DB_PASSWORD:-}
	db_name="hlbridge_test_$(date +%s)_$(random_token 8 'a-z0-9')"
	# The password goes through a private option file, not the command line.
	client_cnf="$dir/client.cnf"
	{
		echo "[client]"
		echo "user=$db_user"
		echo "password=\"${db_password//\"/\\\"}\""
		case $db_host in
		*:/*) echo "socket=${db_host#*:}" ;;
		*:*)
			echo "host=${db_host%%:*}"
			echo "port=${db_host##*:}"
			;;
		*) echo "host=$db_host" ;;
		esac
	} >"$client_cnf"
	chmod 600 "$client_cnf"
	printf 'DB_NAME=%s\n' "$db_name" >"$dir/external-db"
	mariadb --defaults-extra-file="$client_cnf" -e "CREATE DATABASE \`$db_name\` CHARACTER SET utf8mb4" ||
		die "cannot create database $db_name on $db_host as $db_user"
	log "created database $db_name on $db_host ($(elapsed))"
else
	# The data is thrown away with DIR, so durability buys nothing: no fsync
	# (O_DIRECT_NO_FSYNC halves mariadb-install-db's time) and a small redo log.
	# A private tmpdir too: MariaDB names its temporary tables in tmpdir by
	# pid and counter, and bootstraps running side by side in one /tmp (test
	# packages starting sites at once) removed each other's, failing
	# mariadb-install-db about one time in three.
	mkdir -p "$dir/tmp"
	db_opts=(--no-defaults --datadir="$dir/db" --tmpdir="$dir/tmp" --innodb-log-file-size=8M
		--innodb-flush-method=O_DIRECT_NO_FSYNC --innodb-flush-log-at-trx-commit=0)
	[[ $(id -u) -eq 0 ]] && db_opts+=(--user=root)
	mariadb-install-db "${db_opts[@]}" --auth-root-authentication-method=socket \
		--skip-test-db >"$dir/mariadb.log" 2>&1 ||
		die "mariadb-install-db failed (see $dir/mariadb.log)"
	start_group /usr/sbin/mariadbd "${db_opts[@]}" --socket="$dir/mysql.sock" \
		--pid-file="$dir/mariadb.pid" --skip-networking --innodb-buffer-pool-size=64M \
		--log-error="$dir/mariadb.log" >>"$dir/mariadb.log" 2>&1
	db_pid=$last_pid
	# Ready in ~0.1 s on an idle machine; allow for a very busy one.
	deadline=$((SECONDS + wait_seconds))
	until mariadb-admin --no-defaults --socket="$dir/mysql.sock" -uroot ping >/dev/null 2>&1; do
		kill -0 "$db_pid" 2>/dev/null || die "mariadbd exited (see $dir/mariadb.log)"
		((SECONDS < deadline)) || die "mariadbd did not answer on $dir/mysql.sock within $wait_seconds s"
		sleep 0.05
	done
	# WordPress connects with a password so it works whatever user runs PHP.
	mariadb --no-defaults --socket="$dir/mysql.sock" -uroot <<-SQL
		CREATE DATABASE wordpress CHARACTER SET utf8mb4;
		CREATE USER 'wordpress'@'localhost' IDENTIFIED BY '$db_password';
		GRANT ALL ON wordpress.* TO 'wordpress'@'localhost';
	SQL
	db_host="localhost:$dir/mysql.sock"
	log "MariaDB ready on $dir/mysql.sock ($(elapsed))"
fi

wait "$copy_pid" || die "copying /usr/share/wordpress to $site failed"
copy_pid=
rm -f "$site/wp-config.php" "$site/.htaccess"
mkdir -p "$site/wp-content/mu-plugins" "$site/wp-content/uploads" \
	"$site/wp-content/plugins" "$site/wp-content/themes"
cp "$here/mail-catcher.php" "$site/wp-content/mu-plugins/mail-catcher.php"
cp "$companion" "$site/wp-content/mu-plugins/hlbridge-companion.php"
cp "$here/wp-eval.php" "$dir/wp-eval.php"
: >"$dir/mail.jsonl"

port=${WP_TEST_PORT:-}
[[ -n $port ]] || port=$(free_port)

salts=""
for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
	salts+="define('$key', '$(random_token 64)');"$'\n'
done
multisite_config="" # the MULTISITE constants, once the network exists

# write_config writes wp-config.php for $port.
write_config() {
	cat >"$site/wp-config.php" <<-PHP
		<?php
		// Written by hlbridge's testdata/wordpress/start.sh for a throw-away test site.
		define('DB_NAME', $(php_quote "$db_name"));
		define('DB_USER', $(php_quote "$db_user"));
		define('DB_PASSWORD', $(php_quote "$db_password"));
		define('DB_HOST', $(php_quote "$db_host"));
		define('DB_CHARSET', 'utf8mb4');
		define('DB_COLLATE', '');
		\$table_prefix = 'wp_';

		$salts
		// Application passwords are refused over plain http unless the site is 'local'.
		define('WP_ENVIRONMENT_TYPE', 'local');
		define('WP_HOME', 'http://127.0.0.1:$port');
		define('WP_SITEURL', 'http://127.0.0.1:$port');
		define('DISABLE_WP_CRON', true);
		define('WP_HTTP_BLOCK_EXTERNAL', true);
		define('AUTOMATIC_UPDATER_DISABLED', true);
		define('WP_AUTO_UPDATE_CORE', false);
		define('DISALLOW_FILE_MODS', true);
		// Notices printed into a response would corrupt its JSON.
		define('WP_DEBUG', false);
		define('WP_DEBUG_DISPLAY', false);
		if (PHP_SAPI !== 'cli') {
		    @ini_set('display_errors', '0'); // errors still reach DIR/php.log
		}
		// Read by mu-plugins/mail-catcher.php.
		define('HLBRIDGE_TEST_MAIL_LOG', $(php_quote "$dir/mail.jsonl"));
		$multisite_config

		if (!defined('ABSPATH')) {
		    define('ABSPATH', __DIR__ . '/');
		}
		require_once ABSPATH . 'wp-settings.php';
	PHP
}
write_config

# Compiled PHP is kept in DIR/opcache, so that the server's first request and every
# wp-eval.php run skip compiling WordPress (about 0.5 s of CPU each otherwise).
# install.php fills it.
mkdir -p "$dir/opcache"
cli_cache=(-d opcache.enable_cli=1 -d opcache.file_cache="$dir/opcache" -d opcache.file_cache_only=1)
# install.php prints the application password and nothing else; it is kept out of
# logs and goes only into site.env.
app_password=$(php -d display_errors=stderr "${cli_cache[@]}" "$here/install.php" "$site" "http://127.0.0.1:$port") ||
	die "installing WordPress failed"
[[ $app_password =~ ^[A-Za-z0-9]{16,}$ ]] || die "install.php printed no application password"
log "WordPress installed ($(elapsed))"

# A multisite site rewrites wp-config.php once it serves (see below): the server's
# opcache must then look at the file again at once, not up to 2 s later.
server_opts=()
[[ ${WP_TEST_MULTISITE:-} == 1 ]] && server_opts+=(-d opcache.revalidate_freq=0)

# Serve. php -S exits at once when the port is taken, so a port picked by the
# kernel and grabbed by someone else in between just means trying another one.
for attempt in 1 2 3 4 5; do
	start_group env PHP_CLI_SERVER_WORKERS=4 php -d display_errors=stderr -d log_errors=On \
		-d opcache.file_cache="$dir/opcache" "${server_opts[@]}" -S "127.0.0.1:$port" -t "$site" >>"$dir/php.log" 2>&1
	php_pid=$last_pid
	answered=0
	deadline=$((SECONDS + wait_seconds))
	while kill -0 "$php_pid" 2>/dev/null && ((SECONDS < deadline)); do
		if index=$(http_get "http://127.0.0.1:$port/wp-json/"); then
			# Make sure it is this site that answers, not another one on the port.
			if [[ $index == *"\"url\":\"http:\\/\\/127.0.0.1:$port\""* ]] && kill -0 "$php_pid" 2>/dev/null; then
				answered=1
			fi
			break
		fi
		sleep 0.02
	done
	[[ $answered -eq 1 ]] && break
	kill -- "-$php_pid" 2>/dev/null || true
	[[ -z ${WP_TEST_PORT:-} && $attempt -lt 5 ]] || die "the PHP server did not answer GET /wp-json/ on port $port (see $dir/php.log)"
	log "port $port was not ours, trying another one"
	port=$(free_port)
	write_config
done
log "serving http://127.0.0.1:$port ($(elapsed))"

if [[ ${WP_TEST_MULTISITE:-} == 1 ]]; then
	# Made once the port is final: the network's domain includes it. Nothing
	# talks to the site yet (site.env is not written), and PHP's server reads
	# wp-config.php afresh on every request.
	php -d display_errors=stderr "${cli_cache[@]}" "$here/multisite.php" "$site" "http://127.0.0.1:$port" ||
		die "making the site a multisite network failed"
	multisite_config="define('WP_ALLOW_MULTISITE', true);
define('MULTISITE', true);
define('SUBDOMAIN_INSTALL', false);
define('DOMAIN_CURRENT_SITE', '127.0.0.1:$port');
define('PATH_CURRENT_SITE', '/');
define('SITE_ID_CURRENT_SITE', 1);
define('BLOG_ID_CURRENT_SITE', 1);"
	write_config
	index=$(http_get "http://127.0.0.1:$port/?rest_route=/") && [[ $index == *'"namespaces"'* ]] ||
		die "the multisite network does not answer ?rest_route=/ (see $dir/php.log)"
	log "multisite network ready ($(elapsed))"
fi

{
	echo "# Written by testdata/wordpress/start.sh; stop the site with stop.sh $(shell_quote "$dir")"
	echo "WORDPRESS_URL=$(shell_quote "http://127.0.0.1:$port")"
	echo "WORDPRESS_USERNAME='admin'"
	echo "WORDPRESS_APP_PASSWORD=$(shell_quote "$app_password")"
	echo "WORDPRESS_MAIL_LOG=$(shell_quote "$dir/mail.jsonl")"
	echo "WORDPRESS_DIR=$(shell_quote "$site")"
	echo "WORDPRESS_TEST_SITE=$(shell_quote "$dir")"
} >"$dir/site.env"
chmod 600 "$dir/site.env"

ok=1
log "ready in $(elapsed)"
echo "$dir"
