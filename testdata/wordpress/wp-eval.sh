#!/usr/bin/env bash
# wp-eval.sh DIR 'php code' [ARG...] runs PHP code inside the test WordPress that
# start.sh started in DIR and prints its output; ARGs are in $args. Examples:
#   wp-eval.sh "$DIR" "update_option('permalink_structure', ''); flush_rewrite_rules(false);"
#   wp-eval.sh "$DIR" 'echo get_user_meta((int) $args[0], $args[1], true);' 2 highlevel_tags
set -euo pipefail

[[ $# -ge 2 ]] || {
	echo "usage: wp-eval.sh DIR 'php code' [ARG...]" >&2
	exit 2
}
dir=$1
shift
[[ -f $dir/site.env && -f $dir/wp-eval.php ]] || {
	echo "wp-eval.sh: error: $dir is not a site started by start.sh" >&2
	exit 1
}
# shellcheck source=/dev/null
source "$dir/site.env"
# The opcache file cache (made by start.sh) saves compiling WordPress on every run.
exec php -d display_errors=stderr -d opcache.enable_cli=1 -d opcache.file_cache="$dir/opcache" \
	-d opcache.file_cache_only=1 "$dir/wp-eval.php" "$WORDPRESS_DIR" "$WORDPRESS_URL" "$@"
