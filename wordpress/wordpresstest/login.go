package wordpresstest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// LoginWorks reports whether login and password log in through
// wp-login.php, as a person at the login form would: the proof that a
// password set or returned by the bridge is the one WordPress holds.
func (s *Site) LoginWorks(t testing.TB, login, password string) bool {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	// WordPress refuses a login without its test cookie.
	jar.SetCookies(u, []*http.Cookie{{Name: "wordpress_test_cookie", Value: "WP Cookie check"}})
	resp, err := hc.PostForm(s.URL+"/wp-login.php", url.Values{
		"log": {login}, "pwd": {password}, "wp-submit": {"Log In"}, "testcookie": {"1"},
		"redirect_to": {s.URL + "/wp-admin/"},
	})
	if err != nil {
		t.Errorf("wordpresstest: log in as %s: %v", login, err)
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return false
	}
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "wordpress_logged_in_") {
			return true
		}
	}
	return false
}

// SetPasswordThroughLink follows WordPress's set-password link
// (wp-login.php?action=rp&key=…&login=…) as a person's browser would: it
// opens the link (WordPress moves the key into a cookie and redirects),
// checks that the reset form is shown, and submits password through it. It
// returns nil once WordPress says the password was reset, else what went
// wrong.
func (s *Site) SetPasswordThroughLink(link, password string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(link)
	if err != nil {
		return fmt.Errorf("open the link: %w", err)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(form)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="resetpassform"`) {
		return fmt.Errorf("the link shows no reset form (%d, at %s)", resp.StatusCode, resp.Request.URL.Path+"?"+resp.Request.URL.RawQuery)
	}
	m := regexp.MustCompile(`name="rp_key" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return errors.New("the reset form has no rp_key")
	}
	resp, err = hc.PostForm(s.URL+"/wp-login.php?action=resetpass", url.Values{
		"pass1": {password}, "pass2": {password}, "rp_key": {html.UnescapeString(m[1])}, "wp-submit": {"Save Password"},
	})
	if err != nil {
		return fmt.Errorf("submit the reset form: %w", err)
	}
	done, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(done), "Your password has been reset") {
		return fmt.Errorf("WordPress did not reset the password (%d)", resp.StatusCode)
	}
	return nil
}
