package wordpresstest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests cover the scripts under testdata/wordpress and this package's own helpers.

func root(t *testing.T) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPHPFilesLint(t *testing.T) {
	t.Parallel()
	r := root(t)
	for _, f := range []string{
		"wordpress/companion/hlbridge-companion.php",
		"testdata/wordpress/mail-catcher.php",
		"testdata/wordpress/install.php",
		"testdata/wordpress/multisite.php",
		"testdata/wordpress/wp-eval.php",
	} {
		out, err := exec.Command("php", "-l", filepath.Join(r, f)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No syntax errors") {
			t.Errorf("php -l %s: %v\n%s", f, err, out)
		}
	}
}

// TestStartStopTwice runs start.sh and stop.sh twice on the same port: each stop must
// leave no process and no listener behind, or the second start would clash.
func TestStartStopTwice(t *testing.T) {
	t.Parallel()
	r := root(t)
	port := ""
	for run := 1; run <= 2; run++ {
		cmd := exec.Command("bash", filepath.Join(r, "testdata/wordpress/start.sh"))
		// A failure below stops the site too: the cleanup, and the watchdog when
		// this process is killed.
		cmd.Env = append(os.Environ(), "WP_TEST_OWNER_PID="+strconv.Itoa(os.Getpid()))
		if port != "" {
			cmd.Env = append(cmd.Env, "WP_TEST_PORT="+port)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		began := time.Now()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run %d: start.sh: %v\n%s", run, err, stderr.String())
		}
		dir := lastLine(string(out))
		t.Cleanup(func() { exec.Command("bash", filepath.Join(r, "testdata/wordpress/stop.sh"), dir).Run() })
		t.Logf("run %d: start.sh took %v", run, time.Since(began).Round(time.Millisecond))
		s, err := load(dir)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if strings.Contains(stderr.String(), s.AppPassword) || strings.Contains(string(out), s.AppPassword) {
			t.Errorf("run %d: start.sh printed the application password", run)
		}
		_, p, _ := strings.Cut(strings.TrimPrefix(s.URL, "http://"), ":")
		if port != "" && p != port {
			t.Errorf("run %d: site on port %s, want WP_TEST_PORT %s", run, p, port)
		}
		port = p

		if run == 1 {
			checkPermalinks(t, s)
		} else {
			adminClient(s).do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")
		}

		pgids := readPids(t, dir)
		out, err = exec.Command("bash", filepath.Join(r, "testdata/wordpress/stop.sh"), dir).CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: stop.sh: %v\n%s", run, err, out)
		}
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			conn.Close()
			t.Fatalf("run %d: port %s still accepts connections after stop.sh", run, port)
		}
		if running := runningIn(pgids); len(running) > 0 {
			t.Fatalf("run %d: still running after stop.sh: %v", run, running)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("run %d: %s still exists after stop.sh (%v)", run, dir, err)
		}
	}
}

// envLeakHelper makes this test binary, run again by TestKilledOwnerLeavesNoSite,
// the owner of a private site: it starts one, prints its directory and waits to
// be killed.
const envLeakHelper = "WORDPRESSTEST_LEAK_HELPER"

// TestKilledOwnerLeavesNoSite kills (-9) a process that started a private site and
// never stops it: the site's processes must end and its directory go, soon.
func TestKilledOwnerLeavesNoSite(t *testing.T) {
	if os.Getenv(envLeakHelper) == "1" {
		s, _, err := StartPrivate()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("site:", s.Dir)
		time.Sleep(time.Hour) // until killed
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledOwnerLeavesNoSite$", "-test.count=1")
	// The helper reuses this package's site for its TestMain.
	cmd.Env = append(os.Environ(), envLeakHelper+"=1", EnvSite+"="+site.Dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dir := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "site: "); ok {
			dir = d
			break
		}
		t.Log(sc.Text())
	}
	if dir == "" {
		cmd.Wait()
		t.Fatalf("the helper started no site:\n%s", stderr.String())
	}
	// Should this test fail, the site goes all the same.
	t.Cleanup(func() { exec.Command("bash", filepath.Join(root(t), "testdata/wordpress/stop.sh"), dir).Run() })
	pgids := readPids(t, dir)
	if running := runningIn(pgids); len(running) == 0 {
		t.Fatalf("no process of the site runs before the kill (groups %v)", pgids)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	deadline := killed.Add(30 * time.Second) // the watchdog looks every second; stop.sh waits up to 5 s
	for {
		running := runningIn(pgids)
		_, statErr := os.Stat(dir)
		if len(running) == 0 && os.IsNotExist(statErr) {
			t.Logf("site stopped and removed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after its owner was killed, still running: %v; directory: %v", time.Since(killed).Round(time.Second), running, statErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStopAfterDirRemoved removes a site's directory under its feet: stop.sh still
// stops every process of the site, the PHP workers of a master killed alone included.
func TestStopAfterDirRemoved(t *testing.T) {
	t.Parallel()
	r := root(t)
	cmd := exec.Command("bash", filepath.Join(r, "testdata/wordpress/start.sh"))
	cmd.Env = append(os.Environ(), "WP_TEST_OWNER_PID="+strconv.Itoa(os.Getpid()))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start.sh: %v\n%s", err, stderr.String())
	}
	dir := lastLine(string(out))
	stop := func() ([]byte, error) {
		return exec.Command("bash", filepath.Join(r, "testdata/wordpress/stop.sh"), dir).CombinedOutput()
	}
	t.Cleanup(func() { stop() })
	pgids := readPids(t, dir)
	// The PHP server's master (started last, the first process of its
	// group) dies alone: its four workers keep serving.
	master, err := strconv.Atoi(pgids[len(pgids)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if running := runningIn(pgids); len(running) == 0 {
		t.Fatal("nothing of the site runs after its directory was removed; the test proves nothing")
	}
	if out, err := stop(); err != nil {
		t.Fatalf("stop.sh on a removed directory: %v\n%s", err, out)
	}
	if running := runningIn(pgids); len(running) > 0 {
		t.Fatalf("still running after stop.sh: %v", running)
	}
}

// checkPermalinks shows both URL forms on a private site (turning permalinks off on the
// shared one would break the tests running beside this one).
func checkPermalinks(t *testing.T, s *Site) {
	t.Helper()
	pretty, plain := adminClient(s), adminClient(s)
	plain.plainRoutes = true
	pretty.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")
	plain.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")

	t.Run("permalinks off", func(t *testing.T) {
		s.SetPrettyPermalinks(t, false)
		r := pretty.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil)
		if r.status == http.StatusOK && strings.HasPrefix(r.contentType, "application/json") {
			t.Errorf("/wp-json/ still reaches the REST API with permalinks off: %s", shorten(string(r.body), 200))
		}
		plain.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")
	})
	// The cleanup of the subtest turned them back on.
	pretty.do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")
}

func readPids(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// runningIn lists the processes (not zombies) whose process group is one of pgids.
func runningIn(pgids []string) []string {
	want := map[string]bool{}
	for _, p := range pgids {
		want[p] = true
	}
	var running []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(data), ')')
		fields := strings.Fields(string(data[i+1:]))
		if len(fields) > 2 && fields[0] != "Z" && want[fields[2]] {
			running = append(running, strings.TrimSuffix(strings.TrimPrefix(f, "/proc/"), "/stat"))
		}
	}
	return running
}

// TestStartReusesSite checks that Start picks up a running site from $WORDPRESS_TEST_SITE
// and that its stop func leaves that site alone.
func TestStartReusesSite(t *testing.T) {
	t.Setenv(EnvSite, site.Dir)
	s, stop, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if s.URL != site.URL || s.Dir != site.Dir || s.SiteDir != site.SiteDir || s.MailLog != site.MailLog || s.AppPassword != site.AppPassword {
		t.Errorf("reused %v, want %v", s, site)
	}
	adminClient(s).do(t, http.MethodGet, "/hlbridge/v1/status", nil, nil).want(t, http.StatusOK, "")

	t.Setenv(EnvSite, t.TempDir())
	if _, _, err := Start(); err == nil {
		t.Error("Start accepted a directory without site.env")
	}
}

func TestSiteStringHidesPassword(t *testing.T) {
	t.Parallel()
	for _, s := range []string{fmt.Sprint(site), fmt.Sprintf("%+v", site), fmt.Sprintf("%v", site)} {
		if strings.Contains(s, site.AppPassword) {
			t.Errorf("%q shows the application password", s)
		}
	}
}

func TestParseEnv(t *testing.T) {
	t.Parallel()
	env, err := parseEnv(strings.NewReader(`# comment
WORDPRESS_URL='http://127.0.0.1:1234'
PLAIN=abc
QUOTE='it'\''s'
DOUBLE="a \"b\" \$c"
EMPTY=

SPACED='/tmp/a dir/x'
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"WORDPRESS_URL": "http://127.0.0.1:1234", "PLAIN": "abc", "QUOTE": "it's",
		"DOUBLE": `a "b" $c`, "EMPTY": "", "SPACED": "/tmp/a dir/x",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, err := parseEnv(strings.NewReader("BAD='open\n")); err == nil {
		t.Error("unterminated quote accepted")
	}
	// What start.sh writes parses back to the same site.
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(site.Dir, "site.env"))))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "WORDPRESS_TEST_SITE=") {
			v, err := shellUnquote(strings.TrimPrefix(sc.Text(), "WORDPRESS_TEST_SITE="))
			if err != nil || v != site.Dir {
				t.Errorf("WORDPRESS_TEST_SITE in site.env = %q (%v), want %q", v, err, site.Dir)
			}
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestUniqueEmail(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		e := UniqueEmail(t)
		if seen[e] || e != strings.ToLower(e) || !strings.HasPrefix(e, "testuniqueemail+") || !strings.HasSuffix(e, "@example.test") {
			t.Fatalf("UniqueEmail = %q", e)
		}
		seen[e] = true
	}
	e := UniqueEmail(t)
	if got := site.Eval(t, `echo is_email($args[0]) === $args[0] && sanitize_email($args[0]) === $args[0] ? 'ok' : 'refused';`, e); got != "ok" {
		t.Errorf("WordPress %s %q", got, e)
	}
}

func TestEval(t *testing.T) {
	t.Parallel()
	if got := site.Eval(t, `echo $args[0] . '|' . $args[1] . '|' . get_option('home');`, `it's "quoted"`, `$notexpanded`); got != `it's "quoted"|$notexpanded|`+site.URL {
		t.Errorf("Eval = %q", got)
	}
	for name, code := range map[string]string{
		"parse error": `echo 'unterminated;`,
		"fatal error": `no_such_function();`,
		"exit 1":      `exit(1);`,
	} {
		t.Run(name, func(t *testing.T) {
			ft := &fatalRecorder{TB: t}
			ft.run(func() { site.Eval(ft, code) })
			if !ft.failed {
				t.Errorf("Eval(%q) did not fail the test", code)
			}
		})
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the failure instead of failing.
type fatalRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn in its own goroutine, so that Fatalf's Goexit ends only fn.
func (f *fatalRecorder) run(fn func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn()
	}()
	wg.Wait()
}

func TestMailsAndWaitMail(t *testing.T) {
	t.Parallel()
	to := UniqueEmail(t)
	subject := "wordpresstest " + strconv.FormatInt(time.Now().UnixNano(), 36)
	// Sent a little later, so that WaitMail has to wait for it.
	sent := make(chan string, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		ft := &fatalRecorder{TB: t}
		ft.run(func() {
			site.Eval(ft, `wp_mail(array('Someone <'.$args[0].'>'), $args[1], "line 1\nline 2", array('X-Test: yes', 'Reply-To: r@example.test'));`, to, subject)
		})
		sent <- ft.msg
	}()
	m := site.WaitMail(t, strings.ToUpper(to), 10*time.Second)
	if msg := <-sent; msg != "" {
		t.Fatal(msg)
	}
	if m.Subject != subject || m.Message != "line 1\nline 2" || len(m.To) != 1 || !strings.Contains(m.To[0], to) {
		t.Errorf("caught %+v", m)
	}
	if strings.Join(m.Headers, "|") != "X-Test: yes|Reply-To: r@example.test" {
		t.Errorf("headers = %q", m.Headers)
	}
	if m.Time.IsZero() || time.Since(m.Time) > time.Minute {
		t.Errorf("time = %v", m.Time)
	}
	found := false
	for _, m := range site.Mails(t) {
		found = found || m.Subject == subject
	}
	if !found {
		t.Error("Mails does not list the mail WaitMail found")
	}

	ft := &fatalRecorder{TB: t}
	ft.run(func() { site.WaitMail(ft, UniqueEmail(t), 100*time.Millisecond) })
	if !ft.failed {
		t.Error("WaitMail did not fail for a mail that never came")
	}
}
