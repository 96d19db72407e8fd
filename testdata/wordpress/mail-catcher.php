<?php
/**
 * Plugin Name: hlbridge test mail catcher
 * Description: Test sites only. Instead of sending, appends every mail as one JSON line to the file named by HLBRIDGE_TEST_MAIL_LOG.
 * Version: 1.0.0
 *
 * Each line: {"to":["a@example.test"],"subject":"...","message":"...","headers":["..."],"time":"2006-01-02T15:04:05.000000Z"}
 * The wp_mail filter (and so every site customisation of the mail) runs before this.
 */

defined('ABSPATH') || exit;

add_filter('pre_wp_mail', 'hlbridge_test_catch_mail', 10, 2);

/**
 * Writes the mail to the log and reports it sent.
 *
 * @param null|bool $return Short-circuit value from an earlier filter.
 * @param array     $atts   to, subject, message, headers, attachments as given to wp_mail().
 * @return bool|null
 */
function hlbridge_test_catch_mail($return, $atts) {
	if (null !== $return || !defined('HLBRIDGE_TEST_MAIL_LOG')) {
		return $return;
	}
	$split = function ($value, $pattern) {
		if (is_array($value)) {
			return array_values(array_filter(array_map('trim', array_map('strval', $value)), 'strlen'));
		}
		return array_values(array_filter(array_map('trim', preg_split($pattern, (string) $value)), 'strlen'));
	};
	$line = wp_json_encode(array(
		'to'      => $split(isset($atts['to']) ? $atts['to'] : array(), '/,/'),
		'subject' => isset($atts['subject']) ? (string) $atts['subject'] : '',
		'message' => isset($atts['message']) ? (string) $atts['message'] : '',
		'headers' => $split(isset($atts['headers']) ? $atts['headers'] : array(), '/\r?\n/'),
		'time'    => (new DateTime('now', new DateTimeZone('UTC')))->format('Y-m-d\TH:i:s.u\Z'),
	), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
	// LOCK_EX: the PHP server runs several workers that may mail at once.
	if (false === $line || false === file_put_contents(HLBRIDGE_TEST_MAIL_LOG, $line . "\n", FILE_APPEND | LOCK_EX)) {
		return false;
	}
	return true;
}
