package wordpresstest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Eval runs php (PHP code without the opening tag) inside the site, the way a request to
// it would run after WordPress has loaded, and returns what it printed. The args are in
// the PHP array $args, so values need no quoting into the code. A PHP error, an uncaught
// exception or a non-zero exit() fails t, with what PHP wrote to stderr.
//
//	site.Eval(t, `echo get_user_meta((int) $args[0], $args[1], true);`, "12", "highlevel_contact_id")
func (s *Site) Eval(t testing.TB, php string, args ...string) string {
	t.Helper()
	cmdArgs := []string{"-d", "display_errors=stderr"}
	if cache := filepath.Join(s.Dir, "opcache"); isDir(cache) {
		// Compiled PHP kept by start.sh: Eval then takes ~60 ms instead of ~200 ms.
		cmdArgs = append(cmdArgs, "-d", "opcache.enable_cli=1", "-d", "opcache.file_cache="+cache, "-d", "opcache.file_cache_only=1")
	}
	cmdArgs = append(cmdArgs, filepath.Join(s.Dir, "wp-eval.php"), s.SiteDir, s.URL, php)
	cmdArgs = append(cmdArgs, args...)
	cmd := exec.Command("php", cmdArgs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wordpresstest: Eval %s: %v\nstderr: %s\nstdout: %s", shorten(php, 200), err, stderr.String(), shorten(stdout.String(), 2000))
	}
	return stdout.String()
}

// UserMetaRaw returns the meta_value column of the user's meta row with exactly that key
// (the first, if WordPress holds several), as stored: an array shows up PHP-serialized
// (a:2:{i:0;s:2:"t1";...}). It returns "" when there is no such row; use Eval with
// metadata_exists() to tell a missing key from an empty value.
func (s *Site) UserMetaRaw(t testing.TB, userID int64, key string) string {
	t.Helper()
	// CAST ... AS BINARY: MySQL would otherwise match keys ignoring case.
	return s.Eval(t, `global $wpdb;
$v = $wpdb->get_var($wpdb->prepare(
	"SELECT meta_value FROM {$wpdb->usermeta} WHERE user_id = %d AND meta_key = CAST(%s AS BINARY) ORDER BY umeta_id LIMIT 1",
	(int) $args[0], $args[1]));
if ($wpdb->last_error !== '') { fwrite(STDERR, $wpdb->last_error); exit(1); }
echo (string) $v;`, strconv.FormatInt(userID, 10), key)
}

// CreateUserWithAppPassword creates a user with the given login (which must not exist
// yet: make it unique, e.g. from UniqueEmail) and role ("" for none; the role must
// exist), with a unique email, and an application password for it. It is for testing
// what callers with fewer capabilities than the administrator get.
func (s *Site) CreateUserWithAppPassword(t testing.TB, login, role string) (id int64, appPassword string) {
	t.Helper()
	out := s.Eval(t, `list($login, $email, $role) = $args;
if ($role !== '' && !get_role($role)) { fwrite(STDERR, "no role named $role"); exit(1); }
$id = wp_insert_user(array('user_login' => $login, 'user_email' => $email, 'user_pass' => wp_generate_password(24), 'role' => $role));
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
$created = WP_Application_Passwords::create_new_application_password($id, array('name' => 'wordpresstest'));
if (is_wp_error($created)) { fwrite(STDERR, $created->get_error_message()); exit(1); }
echo wp_json_encode(array('id' => $id, 'password' => $created[0]));`, login, UniqueEmail(t), role)
	var created struct {
		ID       int64  `json:"id"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == 0 || created.Password == "" {
		t.Fatalf("wordpresstest: CreateUserWithAppPassword(%q, %q): unexpected output (%v)", login, role, err)
	}
	return created.ID, created.Password
}

// AddRole adds a role that holds exactly caps, for tests of what one capability
// allows. Roles belong to the whole site: give each a unique name. Parallel
// tests may call it: WordPress keeps all roles in one option, so the change is
// made under a database lock, from a fresh read.
func (s *Site) AddRole(t testing.TB, role string, caps ...string) {
	t.Helper()
	s.Eval(t, `global $wpdb;
$role = array_shift($args);
if ('1' !== $wpdb->get_var("SELECT GET_LOCK('hlbridge_test_roles', 60)")) { fwrite(STDERR, "no lock on the roles"); exit(1); }
wp_cache_flush();
wp_roles()->for_site();
if (get_role($role)) { fwrite(STDERR, "a role named $role exists already"); exit(1); }
if (!add_role($role, $role, array_fill_keys($args, true))) { fwrite(STDERR, "add_role($role) failed"); exit(1); }`,
		append([]string{role}, caps...)...)
}

// CreateUser creates a user with this email (its login made from it) holding roles
// (each must exist; none for a user without a role on the site), and returns its id.
func (s *Site) CreateUser(t testing.TB, email string, roles ...string) int64 {
	t.Helper()
	out := s.Eval(t, `$email = array_shift($args);
$login = sanitize_user(str_replace(array('+', '@'), '-', $email), true);
$id = wp_insert_user(array('user_login' => $login, 'user_email' => $email, 'user_pass' => wp_generate_password(24), 'role' => ''));
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
$user = new WP_User($id);
foreach ($args as $role) {
	if (!get_role($role)) { fwrite(STDERR, "no role named $role"); exit(1); }
	$user->add_role($role);
}
echo $id;`, append([]string{email}, roles...)...)
	id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || id <= 0 {
		t.Fatalf("wordpresstest: CreateUser(%q): unexpected output %q", email, out)
	}
	return id
}

// GrantSuperAdmin makes the user a super admin of the network. The site must be a
// multisite network (StartMultisite).
func (s *Site) GrantSuperAdmin(t testing.TB, userID int64) {
	t.Helper()
	s.Eval(t, `if (!is_multisite()) { fwrite(STDERR, "the site is not a multisite network"); exit(1); }
if (!grant_super_admin((int) $args[0]) && !is_super_admin((int) $args[0])) { fwrite(STDERR, "grant_super_admin failed"); exit(1); }`,
		strconv.FormatInt(userID, 10))
}

// SetPrettyPermalinks turns pretty permalinks (/%postname%/) on or off; with them off,
// /wp-json/... answers WordPress's HTML home page and only ?rest_route=/... reaches the
// REST API. The previous setting is restored when t ends. It changes the whole site: a
// test that calls it must not run in parallel with tests that use /wp-json/ URLs.
func (s *Site) SetPrettyPermalinks(t testing.TB, on bool) {
	t.Helper()
	structure := ""
	if on {
		structure = "/%postname%/"
	}
	previous := s.setPermalinks(t, structure)
	t.Cleanup(func() { s.setPermalinks(t, previous) })
}

// setPermalinks sets the permalink structure, rebuilds the rewrite rules and returns the
// structure it replaced.
func (s *Site) setPermalinks(t testing.TB, structure string) string {
	t.Helper()
	return s.Eval(t, `global $wp_rewrite;
$previous = (string) get_option('permalink_structure');
$wp_rewrite->set_permalink_structure($args[0]);
$wp_rewrite->flush_rules(false);
echo $previous;`, structure)
}

// SlowEmailCheckMarker, in an email address, makes WordPress's email check
// slow once SlowEmailCheck was called.
const SlowEmailCheckMarker = "slowcheck-"

// SlowEmailCheck installs a must-use plugin that makes WordPress's
// email_exists() take 200 ms for addresses containing SlowEmailCheckMarker,
// so that two creates of one email racing between the check and the insert
// are the rule rather than luck: without the companion's email lock such a
// race makes two users. Other addresses, and so other tests, are not
// affected. The plugin stays installed.
func (s *Site) SlowEmailCheck(t testing.TB) {
	t.Helper()
	const plugin = `<?php
// Installed by wordpresstest's SlowEmailCheck: a slow email check, to widen races.
add_filter('email_exists', function ($user_id, $email) {
	if (false !== stripos((string) $email, '` + SlowEmailCheckMarker + `')) {
		usleep(200000);
	}
	return $user_id;
}, 10, 2);
`
	dst := filepath.Join(s.SiteDir, "wp-content", "mu-plugins", "wordpresstest-slow-email-check.php")
	if have, err := os.ReadFile(dst); err == nil && string(have) == plugin {
		return
	}
	// Rename so that a request never sees half a plugin.
	tmp := dst + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(plugin), 0o644); err != nil {
		t.Fatalf("wordpresstest: SlowEmailCheck: %v", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatalf("wordpresstest: SlowEmailCheck: %v", err)
	}
}

func isDir(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
