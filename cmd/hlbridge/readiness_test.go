package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// roundTripFunc is an http.RoundTripper made of a func.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The tracker is ready on a recent answer, not ready on a recent failure,
// and probes an idle site at most every wordpressProbeEvery.
func TestWordpressTracker(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	status, down := http.StatusOK, false
	tr := newWordpressTracker(roundTripFunc(func(*http.Request) (*http.Response, error) {
		if down {
			return nil, errors.New("connection refused")
		}
		return &http.Response{StatusCode: status, Body: http.NoBody}, nil
	}))
	tr.now = func() time.Time { return now }
	probes := 0
	tr.probe = func(context.Context) error {
		probes++
		req, _ := http.NewRequest(http.MethodGet, "http://wp.test/wp-json/wp/v2/users/me", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			return err
		}
		if status != http.StatusOK {
			return errors.New("refused")
		}
		return nil
	}
	ctx := context.Background()
	call := func() { // a sync's call to WordPress
		req, _ := http.NewRequest(http.MethodGet, "http://wp.test/wp-json/wp/v2/users", nil)
		tr.RoundTrip(req)
	}

	if err := tr.Ready(ctx); err != nil || probes != 1 {
		t.Fatalf("idle, site up: %v after %d probes; want ready after 1", err, probes)
	}
	now = now.Add(5 * time.Second)
	if err := tr.Ready(ctx); err != nil || probes != 1 {
		t.Fatalf("5 s later: %v after %d probes; want ready without a new probe", err, probes)
	}
	call()
	now = now.Add(8 * time.Second) // 13 s after the probe, 8 after the call
	if err := tr.Ready(ctx); err != nil || probes != 1 {
		t.Fatalf("a sync answered 8 s ago: %v after %d probes; want ready without a probe", err, probes)
	}
	down = true
	call()
	if err := tr.Ready(ctx); err == nil || probes != 1 {
		t.Fatalf("the last call failed: %v after %d probes; want not ready without a probe", err, probes)
	}
	now = now.Add(wordpressProbeEvery)
	for range 5 { // however often /readyz is asked: one probe
		if err := tr.Ready(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("site down, probed: %v; want not ready, saying why", err)
		}
	}
	if probes != 2 {
		t.Fatalf("%d probes; want 2: one per %s", probes, wordpressProbeEvery)
	}
	down, status = false, http.StatusUnauthorized
	now = now.Add(wordpressProbeEvery)
	if err := tr.Ready(ctx); err == nil {
		t.Fatal("the application password refused: ready; want not ready")
	}
	status = http.StatusNotFound // WordPress working and saying no
	call()
	if err := tr.Ready(ctx); err != nil {
		t.Fatalf("a 404 from WordPress: %v; want ready", err)
	}
}

// readyzURL asks the loopback address when the bridge listens on all of them.
func TestReadyzURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/readyz",
		":9000":          "http://127.0.0.1:9000/readyz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/readyz",
		"[::]:9000":      "http://127.0.0.1:9000/readyz",
		"127.0.0.2:9000": "http://127.0.0.2:9000/readyz",
		"[::1]:9000":     "http://[::1]:9000/readyz",
	} {
		if got, err := readyzURL(addr); err != nil || got != want {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if _, err := readyzURL("9000"); err == nil {
		t.Error(`readyzURL("9000"): no error`)
	}
}

// /readyz turns 503, naming WordPress, when the site stops answering, and
// 200 again when it is back; hlbridge health exits 1, then 0; /healthz
// stays 200 throughout.
func TestReadyzFollowsWordPress(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	px := newSwitchProxy(t, strings.TrimPrefix(site.URL, "http://"))
	p := w.start("only", "WORDPRESS_URL=http://"+px.addr)
	addr := "BRIDGE_ADDR=" + strings.TrimPrefix(p.url, "http://")
	client := &http.Client{Timeout: 10 * time.Second}
	readyz := func() (int, string) {
		resp, err := client.Get(p.url + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	health := func() cliResult { return runCLI(t, []string{addr}, w.track, "health") }

	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("with WordPress up: /readyz = %d %s; want 200", code, body)
	}
	if r := health(); r.code != 0 || !strings.Contains(r.stdout, `"ready"`) {
		t.Fatalf("with WordPress up: hlbridge health exit %d, %q %q; want 0", r.code, r.stdout, r.stderr)
	}

	px.setDown(true)
	stopped := time.Now()
	var body string
	waitFor(t, 3*wordpressProbeEvery, "/readyz to say 503", func() bool {
		var code int
		code, body = readyz()
		return code == http.StatusServiceUnavailable
	})
	t.Logf("WordPress stopped: /readyz 503 after %s: %s", time.Since(stopped).Round(time.Millisecond), body)
	if !strings.Contains(body, `"wordpress":"WordPress did not answer`) || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("503 body %s; want the WordPress check to say why and the store ok", body)
	}
	if r := health(); r.code != 1 || !strings.Contains(r.stderr, "not ready") {
		t.Errorf("with WordPress down: hlbridge health exit %d, %q %q; want 1, not ready", r.code, r.stdout, r.stderr)
	}
	if err := p.waitHealthy(time.Second); err != nil {
		t.Errorf("/healthz with WordPress down: %v; want 200 (liveness only)", err)
	}

	px.setDown(false)
	back := time.Now()
	waitFor(t, 3*wordpressProbeEvery, "/readyz to say 200", func() bool { code, _ := readyz(); return code == http.StatusOK })
	t.Logf("WordPress back: /readyz 200 after %s", time.Since(back).Round(time.Millisecond))
	if r := health(); r.code != 0 {
		t.Errorf("WordPress back: hlbridge health exit %d; want 0", r.code)
	}

	// Nobody listening: exit 1, saying so.
	if r := runCLI(t, []string{"BRIDGE_ADDR=" + freeAddr(t)}, w.track, "health"); r.code != 1 || !strings.Contains(r.stderr, "did not answer") {
		t.Errorf("no bridge: hlbridge health exit %d, %q; want 1, did not answer", r.code, r.stderr)
	}
}

// The image's HEALTHCHECK runs hlbridge health, in exec form (no shell).
func TestDockerfileHealthcheck(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `HEALTHCHECK`) || !strings.Contains(string(b), `CMD ["/hlbridge", "health"]`) {
		t.Error(`the Dockerfile has no HEALTHCHECK ... CMD ["/hlbridge", "health"]`)
	}
}
