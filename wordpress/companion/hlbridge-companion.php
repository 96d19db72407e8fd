<?php
/**
 * Plugin Name:       hlbridge companion
 * Description:       REST routes the hlbridge service needs and WordPress lacks: reading and writing any (unprotected) user meta, finding users by a meta value, and sending WordPress's own new-user email.
 * Version:           1.4.1
 * Requires at least: 5.6
 * Requires PHP:      7.4
 *
 * Install: copy this one file into wp-content/mu-plugins/ (create the folder if
 * needed). Must-use plugins load on every request and cannot be switched off
 * from the admin screens, which is what a sync service needs.
 *
 * Why it exists: WordPress's own REST API only writes user meta keys that some
 * plugin registered with show_in_rest, and silently ignores the others; it cannot
 * find a user by a meta value; and creating a user over REST sends no welcome
 * mail. hlbridge keeps the keys WP Fusion uses (highlevel_contact_id,
 * highlevel_tags), so these routes store them exactly as WP Fusion would.
 *
 * Routes (namespace hlbridge/v1; every one needs a logged-in user, which for
 * hlbridge means HTTP Basic auth with an application password):
 *
 *   GET  /hlbridge/v1/roles                       capability list_users (since 1.2.0)
 *        {"roles":{"subscriber":{"name":"Subscriber","capabilities":["level_0","read"]},...}}
 *        every role of the site with the capabilities it grants, sorted
 *   GET  /hlbridge/v1/status                      capability list_users
 *        {"plugin":"hlbridge-companion","version":"1.4.1","wordpress":"6.1.9",
 *         "multisite":false,"meta_prefix":"wp_","users":8286,"meta_value_index":false,
 *         "usermeta_table":"wp_usermeta"}
 *        users, meta_value_index and usermeta_table since 1.4.1: how many users
 *        the site has, and whether its user meta table has an index that starts
 *        with meta_value, or with meta_key then meta_value (WordPress's own
 *        indexes only the key, so a lookup by contact id reads every linked
 *        user's row)
 *   GET  /hlbridge/v1/users/{id}/meta?keys=a,b    capabilities edit_users and edit_user {id}
 *        (or keys[]=a&keys[]=b)
 *        {"id":12,"meta":{"a":"x","b":["t1","t2"],"c":null}}
 *        a stored array comes back as a list of strings, anything else as a
 *        string, a key the user does not have as null
 *   POST /hlbridge/v1/users/{id}/meta             capabilities edit_users and edit_user {id}
 *        body {"meta":{"a":"x","b":["t1","t2"],"c":null}}; a string is stored
 *        as is, a list as a PHP array (serialized, like WP Fusion's
 *        highlevel_tags), null deletes the key; numbers and booleans are stored
 *        as strings ("1"/"0" for booleans), objects are refused. Every key and
 *        value is checked before the first write, so a refused one writes
 *        nothing. Answers like GET for the keys written.
 *   GET  /hlbridge/v1/users?meta_key=K&meta_value=V   capability list_users
 *        {"users":[12,34]}  (exact, case-sensitive match; ascending ids; [] for none)
 *        With "email=E" (since 1.3.0) the answer also carries "user": the
 *        oldest of those users, else the oldest user whose email is E
 *        without regard to case, else null; as GET /wp/v2/users/{id}?context=edit
 *        shows it (that request runs inside, with its own permission checks).
 *        A contact's user is then found in one request, not two or three.
 *   POST /hlbridge/v1/users                       capabilities list_users and create_users (since 1.4.0)
 *        body {"meta_key":K,"meta_value":V,"user":{...}}; "user" is a new
 *        user as POST /wp/v2/users takes it (hlbridge_meta included). Finds
 *        the user as GET with email=user.email does and answers
 *        {"users":[12],"user":{...},"created":false}; when there is none,
 *        creates "user" through POST /wp/v2/users run inside (its own
 *        checks, errors and the one-user-per-email lock apply) and answers
 *        201 {"users":[],"user":{...the new user...},"created":true}.
 *        A new contact's user is then looked up and created in one request.
 *   POST /hlbridge/v1/users/{id}/notify           capabilities create_users and edit_user {id}
 *        body {"notify":"user"|"admin"|"both"} (default "user"); runs
 *        wp_new_user_notification() so the site's own mail customisations apply
 *        {"id":12,"sent":true,"notify":"user"}  (sent is false when wp_mail()
 *        reported a failure through the wp_mail_failed action)
 *        With "pending_key":"K" (since 1.2.0) the mail goes out only while
 *        the user has meta K, and K is deleted first, in the same request:
 *        however often the route is called, and wherever a call breaks off,
 *        the mail is sent at most once. The answer then also says whether K
 *        was set: {"id":12,"sent":false,"notify":"user","pending":false}
 *   POST /hlbridge/v1/users/{id}/roles            capabilities promote_users and promote_user {id}
 *        body {"remove":["gold_member","subscriber"]}; removes those roles
 *        from the user (roles it does not hold are skipped), which may leave
 *        it with no role on the site: core REST cannot do that, since it
 *        ignores an empty "roles". {"id":12,"roles":["author"]}
 *   POST /hlbridge/v1/users/{id}/reset-link       capabilities edit_users and edit_user {id}
 *        makes WordPress's own set-password link for the user with
 *        get_password_reset_key(), as "Lost your password?" does: the key
 *        is stored hashed by WordPress and expires as WordPress decides
 *        (a day by default); a new link replaces the previous one.
 *        {"id":12,"link":"https://example.com/wp-login.php?action=rp&key=…&login=…"}
 *        The link is a secret: the answer is never cached (no-store).
 *
 * And two fields on WordPress's own users endpoint:
 *   POST /wp/v2/users and POST /wp/v2/users/{id} accept "hlbridge_meta", an
 *        object like the meta route's, checked with the request's other
 *        parameters before the user is created or changed; so a new user and
 *        its meta are one request. Needs edit_users. Write-only. (Since 1.1.0.)
 *   GET /wp/v2/users[/{id}]?context=edit shows "hlbridge_super_admin": true
 *        for a multisite super admin, false otherwise. Core REST shows only
 *        the user's role on this site, so a super admin who is a subscriber
 *        here would look harmless; hlbridge never changes such a user.
 *        Read-only: a value sent is ignored. (Since 1.2.0.)
 *
 * One user per email (since 1.2.0): POST /wp/v2/users runs under a MySQL
 * named lock on the lower-cased email, and the email is checked again under
 * it. WordPress's own check (email_exists() in wp_insert_user()) is not
 * atomic and wp_users.user_email has no unique index, so two requests for
 * one new email at the same moment could otherwise both create a user. The
 * second now gets WordPress's usual 500 existing_user_email; 503
 * hlbridge_email_busy when the lock is not free within 10 seconds. Since
 * 1.4.0 a POST /wp/v2/users/{id} that sets an email takes the same lock, so
 * two users cannot be given one email at once either: the second gets
 * WordPress's usual 400 rest_user_invalid_email.
 *
 * Errors have WordPress's usual shape {"code":"...","message":"...","data":{"status":400}}:
 *   401 rest_not_logged_in, 403 rest_forbidden, 404 rest_user_invalid_id,
 *   400 hlbridge_no_keys, hlbridge_protected_meta_key, hlbridge_invalid_meta_value,
 *       hlbridge_invalid_meta, hlbridge_missing_param, hlbridge_invalid_notify;
 *   on POST /wp/v2/users: 500 existing_user_email (as WordPress answers it),
 *       503 hlbridge_email_busy; POST /hlbridge/v1/users answers a create's
 *       errors as POST /wp/v2/users does.
 *
 * Protected meta keys are never read, written or searched (see is_protected_key()):
 * the ones WordPress keeps roles, capabilities (every site's, on multisite), user
 * levels, sessions, application passwords and settings in. Add your own with the
 * filter 'hlbridge_companion_protected_meta_key'.
 *
 * Every route and field checks capabilities, never only a login: list_users to
 * look, edit_users (and edit_user on the user) to touch meta, create_users to
 * mail a new user. A subscriber's application password can use none of them.
 *
 * Why edit_users on top of edit_user: WordPress lets every user edit their own
 * profile (edit_user on themselves), so edit_user alone would let a subscriber
 * write their own highlevel_tags and unlock tag-restricted content.
 */

defined('ABSPATH') || exit;

if (!defined('HLBRIDGE_COMPANION_VERSION')) {
	define('HLBRIDGE_COMPANION_VERSION', '1.4.1');
}

if (!class_exists('HLBridge_Companion')) {

	/**
	 * HLBridge_Companion registers and serves the hlbridge/v1 REST routes.
	 */
	final class HLBridge_Companion {

		const REST_NAMESPACE = 'hlbridge/v1';

		/** Allowed values of "notify", as wp_new_user_notification() knows them. */
		const NOTIFY_VALUES = array('user', 'admin', 'both');

		/**
		 * Keys that hold logins, passwords, sessions and application passwords,
		 * compared case-insensitively. (_application_passwords is also covered by
		 * the rule for keys starting with "_"; it is named here so that the list
		 * says it.)
		 */
		const PROTECTED_KEYS = array(
			'session_tokens',         // logged-in sessions: writing one is a login
			'_application_passwords', // WP_Application_Passwords::USERMETA_KEY_APPLICATION_PASSWORDS
			'default_password_nag',
			'user_pass',
			'user_login',
			'user_email',
			'user_activation_key',    // password-reset keys live in this users column
		);

		/** Hooks the routes into the REST API. */
		public static function init() {
			add_action('rest_api_init', array(__CLASS__, 'register_routes'));
			add_action('rest_api_init', array(__CLASS__, 'register_user_field'));
			add_action('rest_api_init', array(__CLASS__, 'register_super_admin_field'));
			// rest_dispatch_request runs after the permission check, right
			// before the callback: a caller who may not create users learns
			// nothing about which emails exist. Late, so that a plugin that
			// answers the request itself is seen first.
			add_filter('rest_dispatch_request', array(__CLASS__, 'lock_email_before_write'), 1000, 4);
			add_filter('rest_request_after_callbacks', array(__CLASS__, 'unlock_email_after_write'), 10, 3);
			add_action('shutdown', array(__CLASS__, 'release_email_locks'));
		}

		/** Registers every route; the whole HTTP surface is in this one function. */
		public static function register_routes() {
			$user_id_arg = array(
				'id' => array(
					'description' => 'The WordPress user id.',
					'type'        => 'integer',
					'minimum'     => 1,
					'required'    => true,
				),
			);

			register_rest_route(self::REST_NAMESPACE, '/status', array(
				'methods'             => WP_REST_Server::READABLE,
				'callback'            => array(__CLASS__, 'get_status'),
				'permission_callback' => array(__CLASS__, 'can_list_users'),
			));

			register_rest_route(self::REST_NAMESPACE, '/roles', array(
				'methods'             => WP_REST_Server::READABLE,
				'callback'            => array(__CLASS__, 'get_roles'),
				'permission_callback' => array(__CLASS__, 'can_list_users'),
			));

			register_rest_route(self::REST_NAMESPACE, '/users', array(
				array(
					'methods'             => WP_REST_Server::READABLE,
					'callback'            => array(__CLASS__, 'find_users'),
					'permission_callback' => array(__CLASS__, 'can_list_users'),
					'args'                => array(
						'meta_key'   => array('description' => 'The user meta key to match.'),
						'meta_value' => array('description' => 'The exact value it must have.'),
						'email'      => array('description' => 'Also answer with the user found: the oldest matching one, else the one with this email.'),
					),
				),
				array(
					'methods'             => 'POST',
					'callback'            => array(__CLASS__, 'find_or_create_user'),
					'permission_callback' => array(__CLASS__, 'can_find_or_create'),
					'args'                => array(
						'meta_key'   => array('description' => 'The user meta key to match.'),
						'meta_value' => array('description' => 'The exact value it must have.'),
						'user'       => array('description' => 'The user to create when none is found, as POST /wp/v2/users takes it; its email is also looked up.'),
					),
				),
			));

			register_rest_route(self::REST_NAMESPACE, '/users/(?P<id>\d+)/meta', array(
				array(
					'methods'             => WP_REST_Server::READABLE,
					'callback'            => array(__CLASS__, 'get_meta'),
					'permission_callback' => array(__CLASS__, 'can_edit_meta'),
					'args'                => $user_id_arg + array(
						'keys' => array('description' => 'The meta keys to read: "a,b" or keys[]=a&keys[]=b.'),
					),
				),
				array(
					'methods'             => 'POST',
					'callback'            => array(__CLASS__, 'update_meta'),
					'permission_callback' => array(__CLASS__, 'can_edit_meta'),
					'args'                => $user_id_arg + array(
						'meta' => array('description' => 'Key to value: a string, a list of strings, or null to delete.'),
					),
				),
			));

			register_rest_route(self::REST_NAMESPACE, '/users/(?P<id>\d+)/notify', array(
				'methods'             => 'POST',
				'callback'            => array(__CLASS__, 'notify'),
				'permission_callback' => array(__CLASS__, 'can_notify'),
				'args'                => $user_id_arg + array(
					'notify' => array(
						'description' => 'Who gets the new-user mail: user, admin or both.',
						'default'     => 'user',
					),
					'pending_key' => array('description' => 'Send only while the user has this meta key, deleting it first.'),
				),
			));

			register_rest_route(self::REST_NAMESPACE, '/users/(?P<id>\d+)/roles', array(
				'methods'             => 'POST',
				'callback'            => array(__CLASS__, 'remove_roles'),
				'permission_callback' => array(__CLASS__, 'can_promote'),
				'args'                => $user_id_arg + array(
					'remove' => array('description' => 'The roles to take from the user.', 'required' => true),
				),
			));

			register_rest_route(self::REST_NAMESPACE, '/users/(?P<id>\d+)/reset-link', array(
				'methods'             => 'POST',
				'callback'            => array(__CLASS__, 'reset_link'),
				'permission_callback' => array(__CLASS__, 'can_edit_meta'),
				'args'                => $user_id_arg,
			));
		}

		// -----------------------------------------------------------------
		// Permissions. Anonymous callers get 401, missing capabilities 403.
		// A wrong application password makes WordPress treat the request as
		// anonymous, so it also ends as a 401 here.
		// -----------------------------------------------------------------

		/** Permission for status and user lookup: list_users. */
		public static function can_list_users() {
			return self::require_caps(array('list_users'));
		}

		/**
		 * Permission for the meta routes: edit_user for that user, and edit_users.
		 *
		 * edit_user alone would let every user read and write their own meta
		 * (WordPress lets people edit their own profile), so a subscriber could
		 * give themselves tags that unlock content. edit_users keeps these routes
		 * to the people who may edit other users.
		 */
		public static function can_edit_meta(WP_REST_Request $request) {
			$ok = self::require_caps(array('edit_users'));
			if (true !== $ok) {
				return $ok;
			}
			return self::require_user_cap($request, 'edit_user');
		}

		/** Permission for find-or-create: list_users and create_users. */
		public static function can_find_or_create() {
			return self::require_caps(array('list_users', 'create_users'));
		}

		/** Permission for notify: create_users, and edit_user for that user. */
		public static function can_notify(WP_REST_Request $request) {
			$ok = self::require_caps(array('create_users'));
			if (true !== $ok) {
				return $ok;
			}
			return self::require_user_cap($request, 'edit_user');
		}

		/** Permission for removing roles: promote_users, and promote_user for that user. */
		public static function can_promote(WP_REST_Request $request) {
			$ok = self::require_caps(array('promote_users'));
			if (true !== $ok) {
				return $ok;
			}
			return self::require_user_cap($request, 'promote_user');
		}

		/** Returns true when the current user has every capability in $caps, else a 401/403 WP_Error. */
		private static function require_caps(array $caps) {
			if (!is_user_logged_in()) {
				return new WP_Error('rest_not_logged_in', 'You are not currently logged in.', array('status' => 401));
			}
			foreach ($caps as $cap) {
				if (!current_user_can($cap)) {
					return self::forbidden();
				}
			}
			return true;
		}

		/** Checks $cap for the user in the route: 404 when there is no such user, 403 without the capability. */
		private static function require_user_cap(WP_REST_Request $request, $cap) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			return current_user_can($cap, $user->ID) ? true : self::forbidden();
		}

		private static function forbidden() {
			return new WP_Error('rest_forbidden', 'Sorry, you are not allowed to do that.', array('status' => 403));
		}

		/** Returns the WP_User named by the route's id, or a 404 rest_user_invalid_id. */
		private static function get_user(WP_REST_Request $request) {
			$id   = (int) $request['id'];
			$user = $id > 0 ? get_userdata($id) : false;
			if (!$user || !$user->exists()) {
				return new WP_Error('rest_user_invalid_id', 'Invalid user ID.', array('status' => 404));
			}
			return $user;
		}

		// -----------------------------------------------------------------
		// Callbacks.
		// -----------------------------------------------------------------

		/** GET /status: what hlbridge checks before it trusts this site. */
		public static function get_status() {
			global $wpdb;
			return new WP_REST_Response(array(
				'plugin'           => 'hlbridge-companion',
				'version'          => HLBRIDGE_COMPANION_VERSION,
				'wordpress'        => get_bloginfo('version'),
				'multisite'        => is_multisite(),
				'meta_prefix'      => $wpdb->get_blog_prefix(),
				'users'            => (int) $wpdb->get_var("SELECT COUNT(*) FROM {$wpdb->users}"),
				'meta_value_index' => self::meta_value_indexed(),
				'usermeta_table'   => $wpdb->usermeta,
			), 200);
		}

		/**
		 * Whether user meta has an index a lookup by key and value can use:
		 * one whose first column is meta_value, or meta_key then meta_value.
		 */
		private static function meta_value_indexed() {
			global $wpdb;
			$columns = array();
			foreach ((array) $wpdb->get_results("SHOW INDEX FROM {$wpdb->usermeta}", ARRAY_A) as $row) {
				$columns[$row['Key_name']][(int) $row['Seq_in_index']] = $row['Column_name'];
			}
			foreach ($columns as $c) {
				$first  = isset($c[1]) ? $c[1] : '';
				$second = isset($c[2]) ? $c[2] : '';
				if ('meta_value' === $first || ('meta_key' === $first && 'meta_value' === $second)) {
					return true;
				}
			}
			return false;
		}

		/**
		 * GET /roles: every role of this site with the capabilities it grants,
		 * so hlbridge can refuse at start-up to hand out a role that could run
		 * the site, and can tell that the roles it is told to use exist.
		 */
		public static function get_roles() {
			$roles = array();
			foreach (wp_roles()->roles as $slug => $role) {
				$caps = array();
				foreach ((array) $role['capabilities'] as $cap => $granted) {
					if ($granted) {
						$caps[] = (string) $cap;
					}
				}
				sort($caps);
				$roles[(string) $slug] = array('name' => (string) $role['name'], 'capabilities' => $caps);
			}
			return new WP_REST_Response(array('roles' => (object) $roles), 200);
		}

		/** GET /users/{id}/meta: the requested keys, null for those the user does not have. */
		public static function get_meta(WP_REST_Request $request) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			$keys = self::parse_keys($request->get_param('keys'));
			if (is_wp_error($keys)) {
				return $keys;
			}
			return self::meta_response($user->ID, $keys);
		}

		/** POST /users/{id}/meta: writes every key, or none when any key or value is refused. */
		public static function update_meta(WP_REST_Request $request) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			$writes = self::validate_meta($request->get_param('meta'));
			if (is_wp_error($writes)) {
				return $writes;
			}
			self::write_meta($user->ID, $writes);
			return self::meta_response($user->ID, array_keys($writes));
		}

		/**
		 * validate_meta checks a {"key": value} object before anything is
		 * written: every key must be allowed and every value a string, a list
		 * of strings, or null. It returns the writes, or the first refusal.
		 */
		private static function validate_meta($meta) {
			if (null === $meta || array() === $meta) {
				return new WP_Error('hlbridge_no_keys', 'Give the meta to write as {"meta":{"key":"value"}}.', array('status' => 400));
			}
			// PHP decodes a JSON object to an array; a list (["a"]) has no keys to write.
			if (!is_array($meta) || self::is_list($meta)) {
				return new WP_Error('hlbridge_invalid_meta', '"meta" must be a JSON object of key to value.', array('status' => 400));
			}
			$writes = array();
			foreach ($meta as $key => $value) {
				$key   = (string) $key; // PHP turns a key like "123" into an integer.
				$check = self::check_key($key);
				if (is_wp_error($check)) {
					return $check;
				}
				$value = self::normalize_value($key, $value);
				if (is_wp_error($value)) {
					return $value;
				}
				$writes[$key] = $value;
			}
			return $writes;
		}

		/** write_meta stores validated writes: null deletes, a list is stored serialized. */
		private static function write_meta($user_id, array $writes) {
			foreach ($writes as $key => $value) {
				// update_user_meta() and delete_user_meta() strip slashes, so add them.
				if (null === $value) {
					delete_user_meta($user_id, wp_slash($key));
				} else {
					update_user_meta($user_id, wp_slash($key), wp_slash($value));
				}
			}
		}

		/**
		 * register_user_field adds "hlbridge_meta" to the core users endpoint,
		 * so that POST /wp/v2/users (create) and POST /wp/v2/users/{id}
		 * (update) can write user meta in the same request: one write per
		 * user instead of two, and no user without its contact link if the
		 * bridge stops between two requests. The object is validated with the
		 * request's other parameters, before the user is created or changed.
		 * It is write-only; read meta with GET /hlbridge/v1/users/{id}/meta.
		 */
		public static function register_user_field() {
			register_rest_field('user', 'hlbridge_meta', array(
				'get_callback'    => null,
				'update_callback' => array(__CLASS__, 'update_user_field'),
				'schema'          => array(
					'description' => 'User meta to write (hlbridge companion): key to string, list of strings, or null to delete.',
					'type'        => 'object',
					'context'     => array('edit'),
					'arg_options' => array(
						'validate_callback' => array(__CLASS__, 'validate_user_field'),
						'sanitize_callback' => null,
					),
				),
			));
		}

		/**
		 * register_super_admin_field adds the read-only "hlbridge_super_admin"
		 * to the users endpoint in the edit context (which needs list_users, or
		 * being that user). is_super_admin() on a single site means "can
		 * delete_users"; only a network's super admins are meant here.
		 */
		public static function register_super_admin_field() {
			register_rest_field('user', 'hlbridge_super_admin', array(
				'get_callback'    => array(__CLASS__, 'get_super_admin_field'),
				'update_callback' => null,
				'schema'          => array(
					'description' => 'Whether the user is a super admin of the multisite network (hlbridge companion).',
					'type'        => 'boolean',
					'context'     => array('edit'),
					'readonly'    => true,
				),
			));
		}

		/** get_super_admin_field is true for a multisite super admin. */
		public static function get_super_admin_field($user) {
			return is_multisite() && is_super_admin((int) $user['id']);
		}

		/** validate_user_field refuses the whole request when a key or value is refused. */
		public static function validate_user_field($value) {
			if (!current_user_can('edit_users')) {
				return self::forbidden();
			}
			$writes = self::validate_meta($value);
			return is_wp_error($writes) ? $writes : true;
		}

		/** update_user_field writes the validated meta once the user exists. */
		public static function update_user_field($value, $user) {
			$writes = self::validate_meta($value);
			if (is_wp_error($writes)) {
				return $writes;
			}
			self::write_meta($user->ID, $writes);
			return true;
		}

		// -----------------------------------------------------------------
		// One user per email.
		// -----------------------------------------------------------------

		/** Seconds a create or an email change waits for another one of the same email. */
		const EMAIL_LOCK_TIMEOUT = 10;

		/** @var string[] Named locks this request holds, by the id of the REST request that took each. */
		private static $email_locks = array();

		/**
		 * The WordPress users endpoint's callback $handler runs, when it is one
		 * that writes a user's email: 'create_item' (POST /wp/v2/users) or
		 * 'update_item' (POST /wp/v2/users/{id}); else ''.
		 */
		private static function user_write($handler) {
			$cb = isset($handler['callback']) ? $handler['callback'] : null;
			if (is_array($cb) && isset($cb[0], $cb[1]) && $cb[0] instanceof WP_REST_Users_Controller && in_array($cb[1], array('create_item', 'update_item'), true)) {
				return $cb[1];
			}
			return '';
		}

		/**
		 * lock_email_before_write takes a MySQL named lock on the email of a
		 * user about to be created, or about to be given that email (since
		 * 1.4.0), and checks the email again under it. It runs once the
		 * caller's permission was checked, just before the callback; the lock
		 * is held until unlock_email_after_write, which WordPress calls after
		 * the callback on every path (also when this returns an error): the
		 * user row and its meta are committed (autocommit) before the next
		 * write of that email may look. MySQL also drops the lock when the
		 * connection closes, should PHP die.
		 */
		public static function lock_email_before_write($response, $request, $route, $handler) {
			$write = self::user_write($handler);
			if (null !== $response || '' === $write) {
				return $response;
			}
			$email = $request['email'];
			if (!is_string($email) || '' === trim($email)) {
				return $response; // No email to write, or one WordPress refuses on its own.
			}
			global $wpdb;
			$name = 'hlbridge_email_' . md5(strtolower(trim($email)));
			$got  = $wpdb->get_var($wpdb->prepare('SELECT GET_LOCK(%s, %d)', $name, self::EMAIL_LOCK_TIMEOUT));
			if ('1' !== (string) $got) {
				return new WP_Error('hlbridge_email_busy', 'Another request is writing a user with this email; try again.', array('status' => 503));
			}
			self::$email_locks[spl_object_id($request)] = $name;
			$owner = email_exists($email);
			if ('create_item' === $write && $owner) {
				return new WP_Error('existing_user_email', __('Sorry, that email address is already used!'), array('status' => 500));
			}
			if ('update_item' === $write && $owner && (int) $owner !== (int) $request['id']) {
				// WordPress's own answer when it sees the email taken.
				return new WP_Error('rest_user_invalid_email', __('Invalid email address.'), array('status' => 400));
			}
			return $response;
		}

		/** unlock_email_after_write releases the lock lock_email_before_write took for $request. */
		public static function unlock_email_after_write($response, $handler, $request) {
			$id = spl_object_id($request);
			if (isset(self::$email_locks[$id])) {
				self::release_lock(self::$email_locks[$id]);
				unset(self::$email_locks[$id]);
			}
			return $response;
		}

		/** release_email_locks releases what a request still holds when PHP ends. */
		public static function release_email_locks() {
			foreach (self::$email_locks as $name) {
				self::release_lock($name);
			}
			self::$email_locks = array();
		}

		private static function release_lock($name) {
			global $wpdb;
			$wpdb->query($wpdb->prepare('SELECT RELEASE_LOCK(%s)', $name));
		}

		/**
		 * claim_flag deletes the user's meta $key and reports whether this
		 * call deleted it. One DELETE statement is atomic: of two requests
		 * claiming the same flag at once, only one sees a deleted row.
		 */
		private static function claim_flag($user_id, $key) {
			global $wpdb;
			// CAST AS BINARY: MySQL would otherwise match keys ignoring case.
			$deleted = $wpdb->query($wpdb->prepare(
				"DELETE FROM {$wpdb->usermeta} WHERE user_id = %d AND meta_key = CAST(%s AS BINARY)",
				$user_id,
				$key
			));
			wp_cache_delete($user_id, 'user_meta');
			return is_int($deleted) && $deleted > 0;
		}

		/** GET /users?meta_key=K&meta_value=V: ids of the users whose K is exactly V. */
		public static function find_users(WP_REST_Request $request) {
			$email = $request->get_param('email');
			if (null !== $email && !is_string($email)) {
				return new WP_Error('hlbridge_missing_param', 'email must be a string.', array('status' => 400));
			}
			$answer = self::find($request->get_param('meta_key'), $request->get_param('meta_value'), $email);
			return is_wp_error($answer) ? $answer : new WP_REST_Response($answer, 200);
		}

		/**
		 * POST /users: the user GET /users?email= would answer with, else a new
		 * one, created by POST /wp/v2/users run inside (its own checks, the
		 * email lock and the hlbridge_meta field apply as to any create). One
		 * request where a sync of a new contact took two. Since 1.4.0.
		 */
		public static function find_or_create_user(WP_REST_Request $request) {
			$new = $request->get_param('user');
			if (!is_array($new) || !isset($new['email']) || !is_string($new['email'])) {
				return new WP_Error('hlbridge_missing_param', 'Give "user", the user to create as POST /wp/v2/users takes it, with its email.', array('status' => 400));
			}
			$answer = self::find($request->get_param('meta_key'), $request->get_param('meta_value'), $new['email']);
			if (is_wp_error($answer)) {
				return $answer;
			}
			if (null !== $answer['user']) {
				$answer['created'] = false;
				return new WP_REST_Response($answer, 200);
			}
			$inner = new WP_REST_Request('POST', '/wp/v2/users');
			$inner->set_query_params(array('context' => 'edit'));
			$inner->set_body_params($new);
			$response = rest_do_request($inner);
			if ($response->is_error()) {
				return $response->as_error();
			}
			$answer['user']    = rest_get_server()->response_to_data($response, false);
			$answer['created'] = true;
			return new WP_REST_Response($answer, 201);
		}

		/**
		 * The ids of the users whose $key is exactly $value and, when $email
		 * is not null, "user": the oldest of them, else the oldest user whose
		 * email is $email without regard to case, else null.
		 */
		private static function find($key, $value, $email) {
			if (!is_string($key) || '' === $key || !is_string($value) || '' === $value) {
				return new WP_Error('hlbridge_missing_param', 'Give both meta_key and meta_value.', array('status' => 400));
			}
			$check = self::check_key($key);
			if (is_wp_error($check)) {
				return $check;
			}
			$candidates = get_users(array(
				'meta_key'    => $key,
				'meta_value'  => $value,
				'fields'      => 'ID',
				'orderby'     => 'ID',
				'order'       => 'ASC',
				'number'      => -1,
				'count_total' => false,
			));
			// MySQL compares meta keys and values ignoring case and trailing spaces, and
			// HighLevel's contact ids are case-sensitive: keep the exact matches only.
			$ids = array();
			foreach ($candidates as $id) {
				if (in_array($value, get_user_meta((int) $id, $key, false), true)) {
					$ids[] = (int) $id;
				}
			}
			sort($ids, SORT_NUMERIC);
			$ids    = array_values(array_unique($ids));
			$answer = array('users' => $ids);
			if (null === $email) {
				return $answer;
			}
			$answer['user'] = null;
			foreach ($ids as $id) {
				$user = self::rest_user($id);
				if (is_wp_error($user)) {
					return $user;
				}
				if (null !== $user) {
					$answer['user'] = $user;
					return $answer;
				}
			}
			// No linked user (or all were deleted meanwhile): look the email up,
			// exactly (get_users() adds no wildcards) and then without regard to
			// case. WordPress keeps no unique index on emails: the oldest wins.
			$email = trim($email);
			if ('' !== $email) {
				$by_email = get_users(array(
					'search'         => $email,
					'search_columns' => array('user_email'),
					'fields'         => 'ID',
					'orderby'        => 'ID',
					'order'          => 'ASC',
					'number'         => -1,
					'count_total'    => false,
				));
				foreach ($by_email as $id) {
					$found = get_userdata((int) $id);
					if ($found && 0 === strcasecmp($found->user_email, $email)) {
						$user = self::rest_user((int) $found->ID);
						if (is_wp_error($user)) {
							return $user;
						}
						$answer['user'] = $user;
						break;
					}
				}
			}
			return $answer;
		}

		/**
		 * User $id as GET /wp/v2/users/{id}?context=edit shows it, through that
		 * request (so its own permission checks apply); null when the user is
		 * gone, a WP_Error for any other refusal.
		 */
		private static function rest_user($id) {
			$inner = new WP_REST_Request('GET', '/wp/v2/users/' . (int) $id);
			$inner->set_query_params(array('context' => 'edit'));
			$response = rest_do_request($inner);
			if (!$response->is_error()) {
				return rest_get_server()->response_to_data($response, false);
			}
			return 404 === $response->get_status() ? null : $response->as_error();
		}

		/** POST /users/{id}/notify: WordPress's own "Login Details" mail (and/or the admin's). */
		/** Takes the listed roles from the user; it may be left with none. */
		public static function remove_roles(WP_REST_Request $request) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			$remove = $request->get_param('remove');
			if (!is_array($remove)) {
				return new WP_Error('hlbridge_invalid_roles', 'remove must be a list of role names.', array('status' => 400));
			}
			foreach ($remove as $role) {
				if (!is_string($role) || '' === $role) {
					return new WP_Error('hlbridge_invalid_roles', 'remove must be a list of role names.', array('status' => 400));
				}
			}
			foreach ($remove as $role) {
				if (in_array($role, (array) $user->roles, true)) {
					$user->remove_role($role);
				}
			}
			$user = get_userdata($user->ID);
			return new WP_REST_Response(array('id' => $user->ID, 'roles' => array_values((array) $user->roles)), 200);
		}

		/** Makes WordPress's set-password link for the user, as "Lost your password?" does. */
		public static function reset_link(WP_REST_Request $request) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			$key = get_password_reset_key($user);
			if (is_wp_error($key)) {
				return new WP_Error($key->get_error_code(), $key->get_error_message(), array('status' => 409));
			}
			$link     = network_site_url('wp-login.php?action=rp&key=' . $key . '&login=' . rawurlencode($user->user_login), 'login');
			$response = new WP_REST_Response(array('id' => $user->ID, 'link' => $link), 200);
			$response->header('Cache-Control', 'no-store');
			return $response;
		}

		public static function notify(WP_REST_Request $request) {
			$user = self::get_user($request);
			if (is_wp_error($user)) {
				return $user;
			}
			$notify = $request->get_param('notify');
			if (null === $notify || '' === $notify) {
				$notify = 'user';
			}
			if (!is_string($notify) || !in_array($notify, self::NOTIFY_VALUES, true)) {
				return new WP_Error('hlbridge_invalid_notify', 'notify must be one of: ' . implode(', ', self::NOTIFY_VALUES) . '.', array('status' => 400));
			}
			$pending_key = $request->get_param('pending_key');
			$pending     = null;
			if (null !== $pending_key && '' !== $pending_key) {
				if (!is_string($pending_key)) {
					return new WP_Error('hlbridge_protected_meta_key', 'pending_key must be a string.', array('status' => 400));
				}
				$check = self::check_key($pending_key);
				if (is_wp_error($check)) {
					return $check;
				}
				// The flag goes before the mail: a request that dies in
				// between leaves the mail unsent, never sent twice.
				$pending = self::claim_flag($user->ID, $pending_key);
				if (!$pending) {
					return new WP_REST_Response(array('id' => $user->ID, 'sent' => false, 'notify' => $notify, 'pending' => false), 200);
				}
			}

			// wp_new_user_notification() does not say whether its mails went out;
			// wp_mail() announces failures with this action.
			$failed   = false;
			$on_fail  = function () use (&$failed) {
				$failed = true;
			};
			add_action('wp_mail_failed', $on_fail);
			wp_new_user_notification($user->ID, null, $notify);
			remove_action('wp_mail_failed', $on_fail);

			$body = array(
				'id'     => $user->ID,
				'sent'   => !$failed,
				'notify' => $notify,
			);
			if (null !== $pending) {
				$body['pending'] = true;
			}
			return new WP_REST_Response($body, 200);
		}

		// -----------------------------------------------------------------
		// Meta keys and values.
		// -----------------------------------------------------------------

		/**
		 * Returns the list of keys in a "keys" parameter ("a,b" or keys[]=a&keys[]=b),
		 * each checked, without duplicates, or a WP_Error.
		 */
		private static function parse_keys($param) {
			if (is_string($param)) {
				$keys = '' === $param ? array() : explode(',', $param);
			} elseif (is_array($param)) {
				$keys = $param;
			} else {
				$keys = array();
			}
			if (array() === $keys) {
				return new WP_Error('hlbridge_no_keys', 'Name the meta keys to read: ?keys=a,b', array('status' => 400));
			}
			$out = array();
			foreach ($keys as $key) {
				if (!is_string($key)) {
					return new WP_Error('hlbridge_protected_meta_key', 'Meta keys must be strings.', array('status' => 400));
				}
				$check = self::check_key($key);
				if (is_wp_error($check)) {
					return $check;
				}
				$out[$key] = true;
			}
			return array_map('strval', array_keys($out));
		}

		/**
		 * Returns true when $key may be read and written through these routes, or
		 * a 400 hlbridge_protected_meta_key naming it.
		 */
		private static function check_key($key) {
			if (!self::is_protected_key($key)) {
				return true;
			}
			$shown = strlen($key) > 80 ? substr($key, 0, 80) . '...' : $key;
			return new WP_Error(
				'hlbridge_protected_meta_key',
				sprintf('The meta key "%s" is protected and cannot be used through hlbridge.', $shown),
				array('status' => 400, 'key' => $shown)
			);
		}

		/**
		 * Whether $key is one WordPress keeps roles, capabilities, logins,
		 * sessions or settings in, so hlbridge must not touch it:
		 *  - empty, longer than 255 bytes, or not printable ASCII without spaces at
		 *    either end (MySQL compares keys ignoring case, accents and trailing
		 *    spaces, so "WP_Capabilities " would reach the real wp_capabilities row);
		 *  - protected by is_protected_meta();
		 *  - starting with "_": _application_passwords, _edit_lock, ...;
		 *  - starting with the table prefix (wp_capabilities, wp_user_level,
		 *    wp_user-settings, and on multisite every site's wp_2_capabilities,
		 *    wp_2_user_level, ...: the base prefix covers them all);
		 *  - ending in "capabilities" or "user_level", whatever the prefix;
		 *  - the PROTECTED_KEYS: session_tokens, _application_passwords,
		 *    default_password_nag, user_pass, user_login, user_email,
		 *    user_activation_key.
		 * All comparisons ignore case.
		 */
		private static function is_protected_key($key) {
			global $wpdb;
			if (!is_string($key) || '' === $key || strlen($key) > 255) {
				return true;
			}
			if (!preg_match('/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/', $key)) {
				return true;
			}
			$lower     = strtolower($key);
			$protected = '_' === $lower[0]
				|| is_protected_meta($key, 'user')
				|| self::starts_with($lower, strtolower($wpdb->base_prefix))
				|| self::starts_with($lower, strtolower($wpdb->get_blog_prefix()))
				|| self::ends_with($lower, 'capabilities')
				|| self::ends_with($lower, 'user_level')
				|| in_array($lower, self::PROTECTED_KEYS, true);

			/**
			 * Filters whether a user meta key is off limits to hlbridge.
			 *
			 * @param bool   $protected Whether the key is protected.
			 * @param string $key       The meta key.
			 */
			return (bool) apply_filters('hlbridge_companion_protected_meta_key', $protected, $key);
		}

		/**
		 * Returns what to store for a JSON value: null (delete), a string, or a
		 * list of strings; numbers and booleans become strings ("1"/"0" for
		 * booleans). Objects, and lists holding anything but strings, numbers or
		 * booleans, are a 400 hlbridge_invalid_meta_value.
		 */
		private static function normalize_value($key, $value) {
			if (null === $value) {
				return null;
			}
			if (is_scalar($value)) {
				return self::scalar_string($value);
			}
			if (is_array($value) && self::is_list($value)) {
				$list = array();
				foreach ($value as $item) {
					if (!is_scalar($item)) {
						return self::invalid_value($key);
					}
					$list[] = self::scalar_string($item);
				}
				return $list;
			}
			return self::invalid_value($key);
		}

		private static function invalid_value($key) {
			return new WP_Error(
				'hlbridge_invalid_meta_value',
				sprintf('The value for "%s" must be a string, a list of strings, or null.', $key),
				array('status' => 400, 'key' => $key)
			);
		}

		private static function scalar_string($value) {
			if (is_bool($value)) {
				return $value ? '1' : '0';
			}
			if (is_float($value)) {
				return (string) wp_json_encode($value); // shortest exact form, not PHP's 14 digits
			}
			return (string) $value;
		}

		/** The {"id":..,"meta":{..}} answer for $keys as they are stored now. */
		private static function meta_response($user_id, array $keys) {
			$meta = array();
			foreach ($keys as $key) {
				$meta[(string) $key] = self::read_value($user_id, (string) $key);
			}
			// (object) so that no keys would still be {} in JSON, never [].
			return new WP_REST_Response(array('id' => (int) $user_id, 'meta' => (object) $meta), 200);
		}

		/**
		 * Returns a stored value as the API shows it: null when missing, a list of
		 * strings for an array, else a string. Arrays that other plugins stored with
		 * keys or nesting come back as their values, nested ones JSON-encoded.
		 */
		private static function read_value($user_id, $key) {
			if (!metadata_exists('user', $user_id, $key)) {
				return null;
			}
			$value = get_user_meta($user_id, $key, true);
			if (is_object($value)) {
				$value = get_object_vars($value);
			}
			if (!is_array($value)) {
				return self::stored_string($value);
			}
			$list = array();
			foreach ($value as $item) {
				$list[] = is_scalar($item) || null === $item ? self::stored_string($item) : (string) wp_json_encode($item);
			}
			return $list;
		}

		private static function stored_string($value) {
			if (is_bool($value)) {
				return $value ? '1' : '';
			}
			return null === $value ? '' : (string) $value;
		}

		private static function is_list(array $value) {
			return array() === $value || array_keys($value) === range(0, count($value) - 1);
		}

		private static function starts_with($haystack, $needle) {
			return '' !== $needle && 0 === strncmp($haystack, $needle, strlen($needle));
		}

		private static function ends_with($haystack, $needle) {
			return strlen($haystack) >= strlen($needle) && substr($haystack, -strlen($needle)) === $needle;
		}
	}

	HLBridge_Companion::init();
}
