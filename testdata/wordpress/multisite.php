<?php
/**
 * multisite.php SITE_DIR URL turns the single site that install.php installed
 * into a multisite network with subdirectory sites, the way Network Setup
 * (Tools → Network Setup) would: it creates the network tables and fills them,
 * and the site's administrator "admin" becomes the network's super admin.
 * start.sh then writes the MULTISITE constants into wp-config.php (it does so
 * with WP_TEST_MULTISITE=1). Prints nothing on success.
 *
 * The network's domain is the URL's host with its port ("127.0.0.1:41234"):
 * WordPress matches a request's Host header against it, port and all.
 */

if (PHP_SAPI !== 'cli' || $argc !== 3) {
	fwrite(STDERR, "usage: php multisite.php SITE_DIR URL\n");
	exit(2);
}
list(, $site_dir, $url) = $argv;

$parts  = parse_url($url);
$domain = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['HTTP_HOST']   = $domain;
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = isset($parts['port']) ? (string) $parts['port'] : '80';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['HTTPS']       = 'off';

require $site_dir . '/wp-load.php';
if (is_multisite()) {
	fwrite(STDERR, "multisite.php: the site is a network already\n");
	exit(1);
}
// populate_network() probes for wildcard DNS over HTTP for subdomain networks only;
// block HTTP all the same.
add_filter('pre_http_request', function () {
	return new WP_Error('hlbridge_offline', 'no HTTP while making the test network');
});
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

global $wpdb;
// The network's tables are only named on $wpdb once MULTISITE is on: name them here.
foreach ($wpdb->tables('ms_global') as $table => $prefixed) {
	$wpdb->$table = $prefixed;
}
install_network();
$result = populate_network(1, $domain, get_option('admin_email'), 'hlbridge test network', '/', false);
if (is_wp_error($result)) {
	fwrite(STDERR, 'multisite.php: populate_network: ' . $result->get_error_message() . "\n");
	exit(1);
}
// WordPress checks application passwords only once the network option
// using_application_passwords says some exist; the single site kept it in
// wp_options, the network reads wp_sitemeta.
if (false === $wpdb->insert($wpdb->sitemeta, array('site_id' => 1, 'meta_key' => 'using_application_passwords', 'meta_value' => '1'))) {
	fwrite(STDERR, 'multisite.php: cannot mark application passwords in use: ' . $wpdb->last_error . "\n");
	exit(1);
}
