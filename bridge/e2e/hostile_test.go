package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/httpapi"
	"github.com/hlbridge/hlbridge/bridge/metrics"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// withServer changes the HTTP intake's configuration.
func withServer(f func(*httpapi.Config)) option { return func(s *settings) { f(&s.server) } }

// answer is one raw HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	reply  reply
}

// send sends one request as it is and reads the answer; the body may be
// any reader (one of unknown length goes chunked).
func (b *bundle) send(t *testing.T, method, target string, header http.Header, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, b.url+target, body)
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, target, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, target, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	json.Unmarshal(a.body, &a.reply)
	return a
}

// Wrong or missing secrets from one address are answered 429 with
// Retry-After once the address has failed 5 times; the right secret from
// that same address still passes, on every surface; a forged
// X-Forwarded-For does not give a fresh allowance; and the failures are
// counted without the address.
func TestKeyGuessingIsSlowed(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.metrics = m })
	c := b.contact(t)
	wrong := "/?wpf_action=add&access_key=wrong-" + testkit.RandomID(20) + "&contact_id=" + c.ID
	for i := range 5 {
		if a := b.send(t, "POST", wrong, nil, nil); a.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, a.status, a.body)
		}
	}
	limited := []struct {
		name   string
		target string
		header http.Header
	}{
		{"wrong access_key", wrong, nil},
		{"missing access_key", "/?wpf_action=add&contact_id=" + c.ID, nil},
		{"wrong access_key, forged X-Forwarded-For", wrong, http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.8"}}},
		{"wrong X-Access-Key", "/hooks/highlevel/add?contact_id=" + c.ID, http.Header{"X-Access-Key": {"wrong-" + testkit.RandomID(20)}}},
		{"missing X-Access-Key", "/hooks/highlevel/add?contact_id=" + c.ID, nil},
		{"wrong admin token", "/admin/events", http.Header{"Authorization": {"Bearer wrong-" + testkit.RandomID(20)}}},
		{"wrong token for /metrics", "/metrics", http.Header{"Authorization": {"Bearer wrong-" + testkit.RandomID(20)}}},
	}
	var first []byte
	for _, tc := range limited {
		method := "POST"
		if strings.HasPrefix(tc.target, "/admin") || tc.target == "/metrics" {
			method = "GET"
		}
		a := b.send(t, method, tc.target, tc.header, nil)
		if a.status != http.StatusTooManyRequests || a.reply.Error == "" {
			t.Errorf("%s after 5 failures: %d %s", tc.name, a.status, a.body)
			continue
		}
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 12 {
			t.Errorf("%s: Retry-After %q, want 1 to 12 seconds", tc.name, a.header.Get("Retry-After"))
		}
		// Every limited answer is the same: it tells nothing about the key.
		if first == nil {
			first = a.body
		} else if !bytes.Equal(a.body, first) {
			t.Errorf("%s: limited answer %s differs from %s", tc.name, a.body, first)
		}
	}

	// The right secrets pass from the limited address.
	a := b.send(t, "POST", "/?wpf_action=add&sync=true&access_key="+b.key+"&contact_id="+c.ID, nil, nil)
	if a.status != http.StatusOK || a.reply.Status != "ok" {
		t.Fatalf("right access_key from a limited address: %d %s", a.status, a.body)
	}
	b.user(t, c.Email)
	if a := b.send(t, "POST", "/hooks/highlevel/test", http.Header{"X-Access-Key": {b.key}}, nil); a.status != http.StatusOK {
		t.Errorf("right X-Access-Key from a limited address: %d %s", a.status, a.body)
	}
	admin := http.Header{"Authorization": {"Bearer " + b.admin}}
	if a := b.send(t, "GET", "/admin/events", admin, nil); a.status != http.StatusOK {
		t.Errorf("right admin token from a limited address: %d %s", a.status, a.body)
	}
	metrics := b.send(t, "GET", "/metrics", admin, nil)
	if metrics.status != http.StatusOK {
		t.Fatalf("metrics: %d", metrics.status)
	}
	text := string(metrics.body)
	for _, want := range []string{
		`hlbridge_auth_failures_total{status="401",surface="workflow"} 5`,
		`hlbridge_auth_failures_total{status="429",surface="workflow"} 3`,
		`hlbridge_auth_failures_total{status="429",surface="hook"} 2`,
		`hlbridge_auth_failures_total{status="429",surface="admin"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"127.0.0.1", "203.0.113", b.key, b.admin} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics show %q", leak)
		}
	}
}

// Behind a configured proxy, X-Forwarded-For names the client, so each
// client behind it has its own allowance; the proxy's own address too.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	b := setup(t, withServer(func(c *httpapi.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} }))
	wrong := "/?wpf_action=test&access_key=wrong"
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	for i := range 5 {
		if a := b.send(t, "GET", wrong, from("203.0.113.1"), nil); a.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, a.status, a.body)
		}
	}
	if a := b.send(t, "GET", wrong, from("203.0.113.1"), nil); a.status != http.StatusTooManyRequests {
		t.Errorf("6th failure of 203.0.113.1: %d", a.status)
	}
	if a := b.send(t, "GET", wrong, from("203.0.113.2"), nil); a.status != http.StatusUnauthorized {
		t.Errorf("first failure of another client behind the proxy: %d", a.status)
	}
	if a := b.send(t, "GET", wrong, nil, nil); a.status != http.StatusUnauthorized {
		t.Errorf("first failure of the proxy itself: %d", a.status)
	}
}

// hostileCase is one request the intake must refuse.
type hostileCase struct {
	name   string
	method string
	// target is the path and query; KEY and CID stand for the access key
	// and the seeded contact's id.
	target string
	header http.Header // values: KEY replaced too
	body   io.Reader
	raw    string // when set, written to the socket as it is instead
	status int
	// mention is what the JSON error must contain.
	mention string
}

// The hostile corpus: malformed, ambiguous and malicious requests against
// the real server (durable queue, real store, real WordPress). Each is
// refused with the expected 4xx and a JSON error saying what is wrong;
// none queues an event, calls HighLevel or touches WordPress; none reaches
// the log with the access key; and the server answers a valid webhook
// afterwards.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	signer, verifier := newAppSigner(t)
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.verifier = verifier },
		// Key failures are part of the corpus; the limit has its own test.
		withServer(func(c *httpapi.Config) { c.AuthFailureBurst = 1000 }))
	marker := strings.ToLower(testkit.RandomID(12))
	c := b.contact(t, func(c *highlevel.Contact) { c.Email = "hostile-" + marker + "@example.test" })
	const maxBody = 1 << 20

	w := "/?wpf_action=add&access_key=KEY&contact_id=CID"
	js := http.Header{"Content-Type": {"application/json"}}
	ct := func(v string) http.Header { return http.Header{"Content-Type": {v}} }
	str := strings.NewReader
	signed := func(body string, mutate ...func(http.Header)) (http.Header, io.Reader) {
		h := http.Header{"Content-Type": {"application/json"},
			"X-Ghl-Signature": {base64.StdEncoding.EncodeToString(ed25519.Sign(signer.key, []byte(body)))}}
		for _, m := range mutate {
			m(h)
		}
		return h, str(body)
	}
	event := func(mutate ...func(map[string]any)) string {
		raw, _ := json.Marshal(appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID, mutate...))
		return string(raw)
	}
	at := func(d time.Duration) func(map[string]any) {
		return func(ev map[string]any) { ev["timestamp"] = time.Now().Add(d).UTC().Format(time.RFC3339Nano) }
	}
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	deep := func(open, close string, n int) string {
		return `{"contact_id":"CID","x":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}`
	}
	bigJSON := `{"contact_id":"CID","first_name":"` + strings.Repeat("a", maxBody) + `"}`
	var cases []hostileCase
	add := func(name, method, target string, h http.Header, body io.Reader, status int, mention string) {
		cases = append(cases, hostileCase{name: name, method: method, target: target, header: h, body: body, status: status, mention: mention})
	}
	sig := func(name, body string, status int, mention string, mutate ...func(http.Header)) {
		h, r := signed(body, mutate...)
		add(name, "POST", "/hooks/highlevel/app", h, r, status, mention)
	}

	// The key.
	add("wrong access_key", "POST", "/?wpf_action=add&access_key=wrong-KEY&contact_id=CID", nil, nil, 401, "access_key")
	add("no access_key", "POST", "/?wpf_action=add&contact_id=CID", nil, nil, 401, "access_key")
	add("empty access_key", "POST", "/?wpf_action=add&access_key=&contact_id=CID", nil, nil, 401, "access_key")
	add("access_key with a CR LF", "POST", "/?wpf_action=add&access_key=KEY%0D%0A&contact_id=CID", nil, nil, 401, "access_key")
	add("two access_keys, a right one first", "POST", w+"&access_key=wrong", nil, nil, 400, "access_key is given more than once")
	add("two access_keys, both right", "POST", w+"&access_key=KEY", nil, nil, 400, "access_key is given more than once")
	add("access_key in the body only", "POST", "/?wpf_action=add&contact_id=CID", js, str(`{"access_key":"KEY"}`), 401, "access_key")
	add("wrong X-Access-Key", "POST", "/hooks/highlevel/add?contact_id=CID", header("X-Access-Key", "nope"), nil, 401, "X-Access-Key")
	add("hook with the key in the query", "POST", "/hooks/highlevel/add?access_key=KEY&contact_id=CID", nil, nil, 401, "X-Access-Key")
	add("two X-Access-Key headers", "POST", "/hooks/highlevel/add?contact_id=CID", header("X-Access-Key", "KEY", "X-Access-Key", "other"), nil, 400, "X-Access-Key header is given more than once")

	// Parameters.
	add("two contact_ids", "POST", w+"&contact_id=other1", nil, nil, 400, "contact_id is given more than once")
	add("two wpf_actions", "POST", w+"&wpf_action=update", nil, nil, 400, "wpf_action is given more than once")
	add("two wpf_actions, one a test", "POST", "/?wpf_action=test&wpf_action=add&access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action is given more than once")
	add("two roles", "POST", w+"&role=customer&role=administrator", nil, nil, 400, "role is given more than once")
	add("two syncs", "POST", w+"&sync=false&sync=true", nil, nil, 400, "sync is given more than once")
	add("two send_notifications", "POST", w+"&send_notification=1&send_notification=0", nil, nil, 400, "send_notification is given more than once")
	add("two contact_ids on the hook", "POST", "/hooks/highlevel/add?contact_id=CID&contact_id=CID", header("X-Access-Key", "KEY"), nil, 400, "contact_id is given more than once")
	add("no action", "POST", "/?access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action is required")
	add("unknown action", "POST", "/?wpf_action=delete&access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action must be")
	add("action in capitals", "POST", "/?wpf_action=ADD&access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action must be")
	add("action with a CR LF", "POST", "/?wpf_action=add%0D%0ALocation:%20x&access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action must be")
	add("huge action", "POST", "/?wpf_action="+strings.Repeat("a", 100_000)+"&access_key=KEY&contact_id=CID", nil, nil, 400, "wpf_action must be")
	add("unknown hook action", "POST", "/hooks/highlevel/delete?contact_id=CID", header("X-Access-Key", "KEY"), nil, 400, "the action must be")
	add("GET of the app route as a hook", "GET", "/hooks/highlevel/app?contact_id=CID", header("X-Access-Key", "KEY"), nil, 400, "the action must be")
	add("role outside the list", "POST", w+"&role=editor", nil, nil, 422, `role "editor" is not allowed`)
	add("role administrator", "POST", w+"&role=administrator", nil, nil, 422, `role "administrator" is not allowed`)
	add("role with a CR LF header", "POST", w+"&role=customer%0D%0ASet-Cookie:%20a=b", nil, nil, 422, "is not allowed")
	add("role with invalid UTF-8", "POST", w+"&role=%FF%FE", nil, nil, 422, "is not allowed")
	add("send_notification not a flag", "POST", w+"&send_notification=maybe", nil, nil, 400, "send_notification must be true or false")
	add("sync not a flag", "POST", w+"&sync=2", nil, nil, 400, "sync must be true or false")
	add("bad %-escape", "POST", w+"&x=%zz", nil, nil, 400, "query string is malformed")
	add("semicolon separator", "POST", "/?wpf_action=add&access_key=KEY&contact_id=CID;role=administrator", nil, nil, 400, "query string is malformed")

	// Contact ids outside HighLevel's alphabet.
	for _, id := range []struct{ name, value string }{
		{"path traversal", "..%2F..%2Fetc%2Fpasswd"},
		{"CR LF header", "CID%0D%0AX-Injected:%201"},
		{"NUL", "CID%00"},
		{"accented", "c%C3%B3ntact"},
		{"invalid UTF-8", "%FF%FE%FD"},
		{"quote", "CID%22%3E%3Cscript%3E"},
		{"SQL", "x%27%20OR%20%271%27=%271"},
		{"space", "CID%20"},
		{"65 characters", strings.Repeat("a", 65)},
		{"100,000 characters", strings.Repeat("a", 100_000)},
	} {
		add("contact_id: "+id.name, "POST", "/?wpf_action=add&access_key=KEY&contact_id="+id.value, nil, nil, 400, "contact_id is not a HighLevel contact id")
	}

	// Bodies.
	add("body one byte over the limit", "POST", w, js, str(`"`+strings.Repeat("a", maxBody-1)+`"`), 413, "larger than 1048576 bytes")
	add("body over the limit, chunked", "POST", w, js, io.MultiReader(str(bigJSON)), 413, "larger than")
	add("truncated JSON", "POST", w, js, str(`{"contact_id":"CID","first_na`), 400, "not a HighLevel webhook")
	add("JSON array", "POST", w, js, str(`[{"contact_id":"CID"}]`), 400, "not a HighLevel webhook")
	add("JSON null", "POST", w, js, str(`null`), 400, "not a HighLevel webhook")
	add("JSON string", "POST", w, js, str(`"CID"`), 400, "not a HighLevel webhook")
	add("JSON number", "POST", w, js, str(`12345`), 400, "not a HighLevel webhook")
	add("two JSON objects", "POST", w, js, str(`{"contact_id":"CID"}{"contact_id":"x"}`), 400, "not a HighLevel webhook")
	add("not JSON without a type", "POST", w, nil, str(`contact_id=CID`), 400, "not a HighLevel webhook")
	add("arrays nested 100,000 deep", "POST", w, js, str(deep("[", "]", 100_000)), 400, "not a HighLevel webhook")
	add("objects nested 20,000 deep", "POST", w, js, str(deep(`{"a":`, "}", 20_000)), 400, "not a HighLevel webhook")
	add("body contact_id an object", "POST", w, js, str(`{"contact_id":{"$ne":null}}`), 400, "contact_id must be a string")
	add("body contact_id an array", "POST", w, js, str(`{"contact_id":["CID","other"]}`), 400, "contact_id must be a string")
	add("body contact_id a number", "POST", w, js, str(`{"contact_id":12345}`), 400, "contact_id must be a string")
	add("body contact_id of 500,000 characters", "POST", w, js, str(`{"contact_id":"`+strings.Repeat("a", 500_000)+`"}`), 400, "contact_id is not a HighLevel contact id")
	add("body contact_id invalid UTF-8", "POST", w, js, str("{\"contact_id\":\"\xff\xfe\"}"), 400, "contact_id is not a HighLevel contact id")
	add("body contact_id with a CR LF", "POST", w, js, str(`{"contact_id":"CID\r\nX-Injected: 1"}`), 400, "contact_id is not a HighLevel contact id")
	add("XML", "POST", w, ct("application/xml"), str(`<contact id="CID"/>`), 415, "Content-Type: application/json")
	add("a form", "POST", w, ct("application/x-www-form-urlencoded"), str(`contact_id=other`), 415, "Content-Type: application/json")
	add("multipart", "POST", w, ct("multipart/form-data; boundary=x"), str("--x\r\n\r\nCID\r\n--x--"), 415, "Content-Type: application/json")
	add("malformed content type", "POST", w, ct("application/json; charset"), str(`{"contact_id":"CID"}`), 415, "Content-Type")
	cases = append(cases, hostileCase{name: "body shorter than its Content-Length", status: 400, mention: "could not read the body",
		raw: "POST " + w + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"contact_id\":"})

	// Paths and methods.
	add("dot-dot in the path", "POST", "/hooks/highlevel/../highlevel/add?contact_id=CID", header("X-Access-Key", "KEY"), nil, 404, "no such endpoint")
	add("encoded slash in the action", "POST", "/hooks/highlevel/add%2F..%2Fapp?contact_id=CID", header("X-Access-Key", "KEY"), nil, 404, "no such endpoint")
	add("encoded dot-dot", "POST", "/%2e%2e/hooks/highlevel/add?contact_id=CID", header("X-Access-Key", "KEY"), nil, 404, "no such endpoint")
	add("double slash", "POST", "//?wpf_action=add&access_key=KEY&contact_id=CID", nil, nil, 404, "no such endpoint")
	add("double slash inside", "POST", "/hooks//highlevel/add?contact_id=CID", header("X-Access-Key", "KEY"), nil, 404, "no such endpoint")
	add("trailing slash", "POST", "/hooks/highlevel/add/?contact_id=CID", header("X-Access-Key", "KEY"), nil, 404, "no such endpoint")
	add("WordPress's index.php", "POST", "/index.php"+w[1:], nil, nil, 404, "no such endpoint")
	add("dot-dots after an admin path", "POST", "/admin/events/1/retry/../../../", nil, nil, 404, "no such endpoint")
	for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
		add(m+" of the WP Fusion URL", m, w, nil, nil, 405, "method not allowed")
	}
	add("DELETE of a hook", "DELETE", "/hooks/highlevel/add?contact_id=CID", header("X-Access-Key", "KEY"), nil, 405, "method not allowed")

	// App events.
	add("unsigned app event", "POST", "/hooks/highlevel/app", js, str(event()), 401, "not signed")
	add("app event with the access key instead", "POST", "/hooks/highlevel/app", header("X-Access-Key", "KEY", "Content-Type", "application/json"), str(event()), 401, "not signed")
	sig("app event signed N/A", event(), 401, "not signed", func(h http.Header) { h.Set("X-Ghl-Signature", "N/A") })
	sig("app event with a garbage signature", event(), 401, "does not verify", func(h http.Header) { h.Set("X-Ghl-Signature", "!!not base64!!") })
	sig("app event with another body's signature", event(), 401, "does not verify", func(h http.Header) {
		h.Set("X-Ghl-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(signer.key, []byte(event()))))
	})
	sig("app event with a bad legacy signature only", event(), 401, "does not verify", func(h http.Header) {
		h.Del("X-Ghl-Signature")
		h.Set("X-Wh-Signature", base64.StdEncoding.EncodeToString(make([]byte, 512)))
	})
	sig("app event 10 minutes old", event(at(-10*time.Minute)), 400, "timestamp")
	sig("app event 10 minutes ahead", event(at(10*time.Minute)), 400, "timestamp")
	sig("app event without a timestamp", event(func(ev map[string]any) { delete(ev, "timestamp") }), 400, "timestamp")
	sig("app event with a bad contact id", event(func(ev map[string]any) { ev["id"] = "../" + c.ID }), 400, "contact id")
	sig("app event not JSON", `{"type":"ContactUpdate",`, 400, "")
	sig("app event a JSON array", `[]`, 400, "")
	add("app event over the limit", "POST", "/hooks/highlevel/app", js, str(`{"a":"`+strings.Repeat("a", maxBody)+`"}`), 413, "larger than")

	if len(cases) < 40 {
		t.Fatalf("the corpus has %d cases", len(cases))
	}
	ctx := context.Background()
	events := func() int {
		evs, err := b.queue.Events(ctx, bridge.EventFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	users := func() int {
		out := site.Eval(t, fmt.Sprintf(`echo count(get_users(array('search' => '*%s*', 'search_columns' => array('user_email'), 'fields' => 'ID')));`, marker))
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("user count: %q", out)
		}
		return n
	}
	usersBefore := users()
	fill := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "KEY", b.key), "CID", c.ID) }
	for _, tc := range cases {
		before := events()
		var a answer
		if tc.raw != "" {
			a = rawRequest(t, b.url, fill(tc.raw))
		} else {
			h := http.Header{}
			for k, vs := range tc.header {
				for _, v := range vs {
					h.Add(k, fill(v))
				}
			}
			body := tc.body
			if sr, ok := body.(*strings.Reader); ok { // the body may name the contact too
				raw, _ := io.ReadAll(sr)
				body = strings.NewReader(fill(string(raw)))
			}
			a = b.send(t, tc.method, fill(tc.target), h, body)
		}
		switch {
		case a.status >= 500:
			t.Errorf("%s: %d %.200s", tc.name, a.status, a.body)
		case a.status != tc.status:
			t.Errorf("%s: %d %.200s, want %d", tc.name, a.status, a.body, tc.status)
		case a.reply.Status != "error" || a.reply.Error == "" || !strings.Contains(a.reply.Error, tc.mention):
			t.Errorf("%s: answer %.200s does not say %q", tc.name, a.body, tc.mention)
		}
		if after := events(); after != before {
			t.Errorf("%s: queued %d events", tc.name, after-before)
		}
	}
	t.Logf("%d hostile requests refused", len(cases))
	if n := len(b.hl.Requests()); n != 0 {
		t.Errorf("the corpus made %d HighLevel calls", n)
	}
	if n := users(); n != usersBefore {
		t.Errorf("the corpus changed WordPress: %d users with the contact's email, %d before", n, usersBefore)
	}
	if strings.Contains(b.logs.String(), b.key) {
		t.Error("the access key reached the log")
	}

	// Still up: a valid webhook works.
	a := b.send(t, "POST", "/?wpf_action=add&sync=true&access_key="+b.key, js, strings.NewReader(`{"contact_id":"`+c.ID+`"}`))
	if a.status != http.StatusOK || a.reply.Status != "ok" || !a.reply.Result.Created {
		t.Fatalf("a valid webhook after the corpus: %d %s", a.status, a.body)
	}
	if n := users(); n != usersBefore+1 {
		t.Errorf("%d users with the contact's email after a valid add", n)
	}
}

// rawRequest writes req to the server as it is, closes the sending side
// and reads the answer.
func rawRequest(t *testing.T, base, req string) answer {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw request: %v", err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	json.Unmarshal(a.body, &a.reply)
	return a
}
