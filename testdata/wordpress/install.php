<?php
/**
 * install.php SITE_DIR URL installs WordPress into the database named by
 * SITE_DIR/wp-config.php, the way the browser installer would, and prints the
 * application password of the administrator "admin" on stdout (nothing else goes
 * to stdout; start.sh writes it into site.env).
 *
 * Also: pretty permalinks (/%postname%/), a "customer" role like subscriber,
 * and no HTTP requests or mails during the install.
 */

if (PHP_SAPI !== 'cli' || $argc !== 3) {
	fwrite(STDERR, "usage: php install.php SITE_DIR URL\n");
	exit(2);
}
list(, $site_dir, $url) = $argv;

$parts = parse_url($url);
$_SERVER['HTTP_HOST']   = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = isset($parts['port']) ? (string) $parts['port'] : '80';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['HTTPS']       = 'off';

define('WP_INSTALLING', true);
require $site_dir . '/wp-load.php';

// wp_install() probes the site over HTTP to choose a permalink structure and
// mails the administrator; neither is wanted (nothing serves the site yet).
add_filter('pre_http_request', function () {
	return new WP_Error('hlbridge_offline', 'no HTTP during the test install');
});
if (!function_exists('wp_new_blog_notification')) {
	// Pluggable in wp-admin/includes/upgrade.php: defining it first silences it.
	function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password) {}
}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

if (is_blog_installed()) {
	fwrite(STDERR, "install.php: WordPress is already installed in this database\n");
	exit(1);
}

$result = wp_install('hlbridge test site', 'admin', 'admin@example.test', false, '', wp_generate_password(32, false));
$admin_id = (int) $result['user_id'];
if ($admin_id <= 0) {
	fwrite(STDERR, "install.php: wp_install created no administrator\n");
	exit(1);
}

global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
$wp_rewrite->flush_rules(false);

add_role('customer', 'Customer', array('read' => true));

$created = WP_Application_Passwords::create_new_application_password($admin_id, array('name' => 'hlbridge tests'));
if (is_wp_error($created)) {
	fwrite(STDERR, 'install.php: cannot create an application password: ' . $created->get_error_message() . "\n");
	exit(1);
}
echo $created[0];
