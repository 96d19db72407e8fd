<?php
/**
 * php wp-eval.php SITE_DIR URL CODE [ARG...] runs CODE (PHP without the opening
 * tag) inside the WordPress in SITE_DIR, as a request to URL would see it, and
 * prints what CODE prints. The extra ARGs are in $args (a list of strings), so
 * callers need not quote values into the code. start.sh copies this file to
 * DIR/wp-eval.php; wp-eval.sh and the Go package wordpresstest run it.
 *
 * Errors go to stderr and make the exit status non-zero (255 for a fatal error
 * or an uncaught exception, including a parse error in CODE).
 */

if (PHP_SAPI !== 'cli' || $argc < 4) {
	fwrite(STDERR, "usage: php wp-eval.php SITE_DIR URL CODE [ARG...]\n");
	exit(2);
}
$hlbridge_eval_code = $argv[3];
$args               = array_slice($argv, 4);

$parts = parse_url($argv[2]);
$_SERVER['HTTP_HOST']   = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = isset($parts['port']) ? (string) $parts['port'] : '80';
$_SERVER['REQUEST_URI'] = '/';

require $argv[1] . '/wp-load.php';
// wp-load.php runs in this (global) scope, so CODE sees $wpdb and friends.
eval($hlbridge_eval_code);
