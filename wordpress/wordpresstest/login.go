package wordpresstest

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
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
