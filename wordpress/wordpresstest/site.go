// Package wordpresstest provides a real WordPress for tests, the way net/http/httptest
// provides a server: Start (or Main, for TestMain) runs testdata/wordpress/start.sh, which
// builds a throw-away site from Debian's WordPress package with a private MariaDB, the
// hlbridge companion must-use plugin and a mail catcher, and serves it with PHP's built-in
// server on 127.0.0.1. Helpers read the caught mails, run PHP inside the site and look at
// what WordPress really stored.
//
// A site started once (for example by the project's test script, with
// `dir=$(testdata/wordpress/start.sh)`) can be shared by every test package: set
// WORDPRESS_TEST_SITE to its directory and Start reuses it instead of starting another.
package wordpresstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvSite names the environment variable that points Start at a running site: the
// directory start.sh printed (it holds site.env).
const EnvSite = "WORDPRESS_TEST_SITE"

// startTimeout bounds start.sh, which may first install Debian packages (about 30 s).
const startTimeout = 10 * time.Minute

// Site is a running test WordPress. Its fields come from DIR/site.env.
type Site struct {
	// URL is the site's address without a trailing slash, e.g. http://127.0.0.1:41234.
	URL string
	// Username and AppPassword authenticate as the site's administrator with HTTP Basic
	// auth. The password is a throw-away test secret; still, do not log it.
	Username, AppPassword string
	// Dir is the directory start.sh made (the DIR it printed); SiteDir is the WordPress
	// installation inside it (DIR/site), MailLog the caught mails (DIR/mail.jsonl).
	Dir, SiteDir, MailLog string
}

// String describes the site without its application password, so that logging a
// *Site with %v does not leak it.
func (s *Site) String() string {
	return fmt.Sprintf("wordpresstest.Site{URL: %s, Username: %s, Dir: %s}", s.URL, s.Username, s.Dir)
}

// Start returns a running test WordPress and a func that stops it. It reuses the site in
// the directory named by $WORDPRESS_TEST_SITE when that is set (the stop func is then a
// no-op: whoever started the site stops it); otherwise it runs testdata/wordpress/start.sh,
// found by walking up from the working directory to go.mod, and the stop func runs
// stop.sh. A site Start started is also torn down by a watchdog when this process exits
// without calling stop (a panic, a test timeout). Meant for TestMain; see Main.
func Start() (*Site, func(), error) {
	root, rootErr := repoRoot()
	if dir := os.Getenv(EnvSite); dir != "" {
		site, err := reuse(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("reuse the test WordPress in $%s=%s: %w", EnvSite, dir, err)
		}
		if rootErr == nil {
			// A long-lived site may hold an older companion plugin than this tree.
			if err := site.refreshCompanion(root); err != nil {
				return nil, nil, err
			}
		}
		return site, func() {}, nil
	}
	if rootErr != nil {
		return nil, nil, rootErr
	}
	return start(root)
}

// StartPrivate starts a site of its own even when $WORDPRESS_TEST_SITE names a
// shared one, for a test that changes site-wide settings (permalinks) which would
// disturb the tests running beside it. Stop it with the returned func.
func StartPrivate() (*Site, func(), error) {
	root, err := repoRoot()
	if err != nil {
		return nil, nil, err
	}
	return start(root)
}

// StartMultisite starts a private site that is the main site of a multisite
// network (subdirectory sites; its administrator "admin" is the network's super
// admin), for tests of super admins, whom core REST shows only by their role on
// the site. Stop it with the returned func. See GrantSuperAdmin.
func StartMultisite() (*Site, func(), error) {
	root, err := repoRoot()
	if err != nil {
		return nil, nil, err
	}
	return start(root, "WP_TEST_MULTISITE=1")
}

// Main runs a test binary against a test WordPress: it starts (or reuses) the site, stores
// it in *site, runs the tests, stops the site and exits with the tests' status. When the
// site cannot start it prints why and exits 1: tests that need WordPress never skip.
//
//	var site *wordpresstest.Site
//
//	func TestMain(m *testing.M) { wordpresstest.Main(m, &site) }
func Main(m *testing.M, site **Site) {
	s, stop, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wordpresstest: cannot start the test WordPress: %v\n", err)
		os.Exit(1)
	}
	*site = s
	code := m.Run()
	stop()
	os.Exit(code)
}

// start runs start.sh, with env added to its environment, and loads the site it made.
// The site's directory is made here, so that the site is stopped on every way out:
// when start.sh fails or is killed half-way, stop.sh runs on the directory at once;
// when this process exits without calling stop (a panic, a test timeout, kill -9),
// start.sh's watchdog, which follows this process, runs it.
func start(root string, env ...string) (*Site, func(), error) {
	dir, err := os.MkdirTemp("", "hlbridge-wp.")
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			out, err := exec.Command("bash", filepath.Join(root, "testdata", "wordpress", "stop.sh"), dir).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "wordpresstest: stop.sh %s: %v\n%s", dir, err, out)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "testdata", "wordpress", "start.sh"), dir)
	cmd.Env = append(append(os.Environ(), "WP_TEST_OWNER_PID="+strconv.Itoa(os.Getpid())), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("testdata/wordpress/start.sh: %w\n%s", err, lastLines(stderr.String(), 40))
	}
	site, err := load(lastLine(stdout.String()))
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("start.sh made %q: %w", dir, err)
	}
	return site, stop, nil
}

// reuse loads the site in dir and checks that it answers.
func reuse(dir string) (*Site, error) {
	site, err := load(dir)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(site.URL + "/?rest_route=/")
	if err != nil {
		return nil, fmt.Errorf("the site does not answer (stopped? run testdata/wordpress/start.sh again): %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/?rest_route=/ answered %s", site.URL, resp.Status)
	}
	return site, nil
}

// load reads dir/site.env.
func load(dir string) (*Site, error) {
	if dir == "" {
		return nil, errors.New("no site directory")
	}
	f, err := os.Open(filepath.Join(dir, "site.env"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env, err := parseEnv(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	site := &Site{
		URL:         strings.TrimRight(env["WORDPRESS_URL"], "/"),
		Username:    env["WORDPRESS_USERNAME"],
		AppPassword: env["WORDPRESS_APP_PASSWORD"],
		Dir:         dir,
		SiteDir:     env["WORDPRESS_DIR"],
		MailLog:     env["WORDPRESS_MAIL_LOG"],
	}
	for name, v := range map[string]string{
		"WORDPRESS_URL": site.URL, "WORDPRESS_USERNAME": site.Username, "WORDPRESS_APP_PASSWORD": site.AppPassword,
		"WORDPRESS_DIR": site.SiteDir, "WORDPRESS_MAIL_LOG": site.MailLog,
	} {
		if v == "" {
			return nil, fmt.Errorf("%s: %s is missing", f.Name(), name)
		}
	}
	return site, nil
}

// parseEnv reads the KEY=VALUE lines start.sh writes; values may be shell-quoted.
func parseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: not KEY=VALUE", n)
		}
		v, err := shellUnquote(value)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, key, err)
		}
		env[key] = v
	}
	return env, sc.Err()
}

// shellUnquote undoes the quoting of one shell word: 'single', "double" (with \" \\ \$
// \` escapes) and bare text with backslash escapes, concatenated.
func shellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", errors.New("unterminated double quote")
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// refreshCompanion copies the tree's companion plugin into the site when they differ.
func (s *Site) refreshCompanion(root string) error {
	want, err := os.ReadFile(filepath.Join(root, "wordpress", "companion", "hlbridge-companion.php"))
	if err != nil {
		return err
	}
	dst := filepath.Join(s.SiteDir, "wp-content", "mu-plugins", "hlbridge-companion.php")
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, want) {
		return nil
	}
	// Rename so that a request never sees half a plugin.
	tmp := dst + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, want, 0o644); err != nil {
		return fmt.Errorf("update the companion plugin of the reused site: %w", err)
	}
	return os.Rename(tmp, dst)
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "testdata", "wordpress", "start.sh")); err != nil {
				return "", fmt.Errorf("found go.mod in %s but no testdata/wordpress/start.sh: %w", dir, err)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: cannot find testdata/wordpress/start.sh (or set $%s)", EnvSite)
		}
		dir = parent
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
