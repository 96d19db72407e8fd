package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// The events page (/admin) as an operator uses it: a wrong token sees
// nothing; signing in sets a session cookie that is not the token; the
// page shows events made by real webhooks, with the WordPress user linked
// to its edit screen and a refused event's reason; the filters work; the
// retry button queues the event again, and only with the form's CSRF token.
// The page is rendered and screenshotted in a real headless Chromium.
func TestAdminPage(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.server.WordPressURL = site.URL })

	// A contact with a user, and one unknown to HighLevel: refused.
	done := b.contact(t)
	status, r := b.wpf(t, "add", done.ID)
	if status != http.StatusAccepted {
		t.Fatalf("add: %d %+v", status, r)
	}
	doneEv := b.waitEvent(t, r.EventID, 30*time.Second)
	if doneEv.Status != bridge.StatusDone || doneEv.Result == nil || doneEv.Result.UserID == 0 {
		t.Fatalf("add = %+v", doneEv)
	}
	late := highlevel.Contact{ID: testkit.RandomID(20), FirstName: "Late", Email: strings.ToLower(testkit.RandomID(10)) + "@example.test"}
	_, r = b.wpf(t, "add", late.ID)
	refused := b.waitEvent(t, r.EventID, 30*time.Second)
	if refused.Status != bridge.StatusRefused {
		t.Fatalf("add of an unknown contact = %+v", refused)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(c *http.Client, method, path string, form url.Values, header ...string) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, b.url+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, string(raw)
	}
	seesEvents := func(page string) bool { return strings.Contains(page, done.ID) || strings.Contains(page, late.ID) }

	// Not signed in, or with a wrong token: the sign-in form, no event.
	resp, page := send(browser, "GET", "/admin", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `action="/admin/login"`) || seesEvents(page) {
		t.Fatalf("GET /admin signed out: %d, form %v, events shown %v", resp.StatusCode, strings.Contains(page, "/admin/login"), seesEvents(page))
	}
	if !strings.Contains(page, `name="viewport"`) {
		t.Error("the page has no viewport meta: unusable on a phone")
	}
	resp, page = send(browser, "POST", "/admin/login", url.Values{"token": {"wrong-" + b.admin}})
	if resp.StatusCode != http.StatusUnauthorized || seesEvents(page) || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, events shown %v, cookies %v; want 401, nothing", resp.StatusCode, seesEvents(page), resp.Cookies())
	}
	if resp, page = send(browser, "GET", "/admin", nil, "Authorization", "Bearer wrong-"+b.admin); resp.StatusCode != http.StatusUnauthorized || seesEvents(page) {
		t.Fatalf("wrong bearer token: %d, events shown %v", resp.StatusCode, seesEvents(page))
	}

	// Signing in: a session cookie, not the token.
	resp, _ = send(browser, "POST", "/admin/login", url.Values{"token": {b.admin}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin" {
		t.Fatalf("sign in: %d to %q; want 303 to /admin", resp.StatusCode, resp.Header.Get("Location"))
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"hlbridge_admin=", "HttpOnly", "SameSite=Strict", "Path=/admin"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("session cookie %q lacks %s", setCookie, want)
		}
	}
	if strings.Contains(setCookie, b.admin) {
		t.Fatal("the session cookie holds the admin token")
	}

	// The page: both events, the user linked to wp-admin, the reason.
	resp, page = send(browser, "GET", "/admin", nil)
	userLink := fmt.Sprintf(`href="%s/wp-admin/user-edit.php?user_id=%d"`, site.URL, doneEv.Result.UserID)
	for what, want := range map[string]string{"the done contact": done.ID, "the refused contact": late.ID,
		"the user's edit link": userLink, "the refusal": template(refused.Error), "a retry button": `action="/admin/retry"`} {
		if !strings.Contains(page, want) {
			t.Errorf("signed-in page lacks %s (%s)", what, want)
		}
	}
	if strings.Contains(page, b.admin) || strings.Contains(page, b.key) {
		t.Fatal("the page shows a secret")
	}
	if got := strings.Count(page, `action="/admin/retry"`); got != 1 {
		t.Errorf("%d retry buttons; want 1, for the refused event only", got)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token in the page")
	}
	if _, page = send(browser, "GET", "/admin?contact="+url.QueryEscape(late.ID), nil); !strings.Contains(page, late.ID) || strings.Contains(page, done.ID) {
		t.Error("filter by contact: wrong events")
	}
	if _, page = send(browser, "GET", "/admin?status=done", nil); strings.Contains(page, late.ID) || !strings.Contains(page, done.ID) {
		t.Error("filter by status done: wrong events")
	}

	// The admin API filters by contact too.
	if resp, body := send(http.DefaultClient, "GET", "/admin/events?contact_id="+url.QueryEscape(late.ID), nil, "Authorization", "Bearer "+b.admin); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, late.ID) || strings.Contains(body, done.ID) {
		t.Errorf("GET /admin/events?contact_id: %d %s", resp.StatusCode, body)
	}

	shot := screenshot(t, b.url, setCookie)

	// Retry: refused without the form's CSRF token, applied with it.
	id := strconv.FormatInt(refused.ID, 10)
	for name, form := range map[string]url.Values{"no token": {"id": {id}}, "a wrong token": {"id": {id}, "csrf": {strings.Repeat("0", 64)}}} {
		if resp, _ := send(browser, "POST", "/admin/retry", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("retry with %s: %d; want 403", name, resp.StatusCode)
		}
	}
	if ev, _ := b.queue.Event(context.Background(), refused.ID); ev.Status != bridge.StatusRefused || ev.Attempts != refused.Attempts {
		t.Fatalf("a retry without CSRF token changed the event: %+v", ev)
	}
	b.hl.PutContact(late)
	resp, _ = send(browser, "POST", "/admin/retry", url.Values{"id": {id}, "csrf": {csrf[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d; want 303", resp.StatusCode)
	}
	if ev := b.waitEvent(t, refused.ID, 30*time.Second); ev.Status != bridge.StatusDone {
		t.Fatalf("retried event = %+v", ev)
	}
	b.user(t, late.Email)
	_, page = send(browser, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page, "Event "+id+" is queued again.") {
		t.Error("the page does not say the event was queued again")
	}
	// A second retry of the now done event: the page says why not.
	if resp, page = send(browser, "POST", "/admin/retry", url.Values{"id": {id}, "csrf": {csrf[1]}}); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(page, "only failed or refused events are retried") {
		t.Errorf("retry of a done event: %d", resp.StatusCode)
	}

	// Signing out ends the cookie; the bearer token still works.
	send(browser, "POST", "/admin/logout", url.Values{"csrf": {csrf[1]}})
	if _, page = send(browser, "GET", "/admin", nil); seesEvents(page) {
		t.Error("signed out, the page still shows events")
	}
	if resp, page = send(http.DefaultClient, "GET", "/admin", nil, "Authorization", "Bearer "+b.admin); resp.StatusCode != http.StatusOK || !seesEvents(page) {
		t.Errorf("bearer token: %d, events shown %v", resp.StatusCode, seesEvents(page))
	}
	t.Logf("screenshot of the events page: %s", shot)
}

// Failed sign-ins count against the access-key failure limit: past the
// burst, the form answers 429, while the right token still gets in.
func TestAdminPageLoginLimited(t *testing.T) {
	t.Parallel()
	b := setup(t, withQueue(queue.Config{}), func(s *settings) { s.server.AuthFailureBurst, s.server.AuthFailuresPerMinute = 2, 1 })
	codes := []int{}
	for range 4 {
		resp, err := http.PostForm(b.url+"/admin/login", url.Values{"token": {"guess-" + testkit.RandomID(16)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[401 401 429 429]" {
		t.Errorf("wrong tokens answered %v; want [401 401 429 429]", codes)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(b.url+"/admin/login", url.Values{"token": {b.admin}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the right token while limited: %d; want 303", resp.StatusCode)
	}
}

// template is s as html/template writes it in the page's text.
func template(s string) string {
	return strings.NewReplacer(`"`, "&#34;", "'", "&#39;", "&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

var chromiumOnce struct {
	sync.Once
	path string
	err  error
}

// chromium returns Debian's chromium, installing it with apt-get when it
// is missing (as the WordPress scripts install their packages), or skips
// the test saying why it cannot.
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromiumOnce.path = p
				return
			}
		}
		if os.Geteuid() != 0 {
			chromiumOnce.err = fmt.Errorf("chromium is missing and installing it needs root: apt-get install chromium")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		install := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "chromium")
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := install.CombinedOutput(); err != nil {
			update := exec.CommandContext(ctx, "apt-get", "update")
			update.Run()
			install = exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "chromium")
			install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out2, err := install.CombinedOutput(); err != nil {
				chromiumOnce.err = fmt.Errorf("apt-get install chromium: %v\n%s\n%s", err, tail(string(out), 5), tail(string(out2), 5))
				return
			}
		}
		chromiumOnce.path, chromiumOnce.err = exec.LookPath("chromium")
	})
	if chromiumOnce.err != nil {
		t.Skipf("no headless Chromium for the browser test: %v", chromiumOnce.err)
	}
	return chromiumOnce.path
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// screenshot renders the events page in headless Chromium, signed in with
// the session cookie setCookie, and checks what a browser shows; then it
// checks that with a wrong bearer token Chromium shows no event. The
// browser goes through a proxy that adds the cookie (or the header) to its
// requests, since Chromium's command line cannot set one. It returns the
// screenshot's path, under the test's temp folder.
func screenshot(t *testing.T, bridgeURL, setCookie string) string {
	t.Helper()
	bin := chromium(t)
	target, _ := url.Parse(bridgeURL)
	cookie := strings.SplitN(setCookie, ";", 2)[0]
	var header [2]string
	var mu sync.Mutex
	rp := httputil.NewSingleHostReverseProxy(target)
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		mu.Lock()
		defer mu.Unlock()
		r.Header.Set(header[0], header[1])
	}
	px := httptest.NewServer(rp)
	defer px.Close()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
			"--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile"),
			"--window-size=412,915"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mu.Lock()
	header = [2]string{"Cookie", cookie}
	mu.Unlock()
	dom := run("--dump-dom", px.URL+"/admin")
	for _, want := range []string{"hlbridge · events", "/wp-admin/user-edit.php?user_id=", `action="/admin/retry"`, "refused"} {
		if !strings.Contains(dom, template(want)) && !strings.Contains(dom, want) {
			t.Errorf("Chromium's page lacks %q:\n%s", want, tail(dom, 30))
		}
	}
	shot := filepath.Join(dir, "admin-events.png")
	run("--screenshot="+shot, "--hide-scrollbars", px.URL+"/admin")
	if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	mu.Lock()
	header = [2]string{"Authorization", "Bearer wrong-token-0123456789"}
	mu.Unlock()
	if dom := run("--dump-dom", px.URL+"/admin"); strings.Contains(dom, "user-edit.php") || strings.Contains(dom, "/admin/retry") {
		t.Errorf("with a wrong token Chromium shows events:\n%s", tail(dom, 30))
	}
	return shot
}
