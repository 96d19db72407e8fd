package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hlbridge/hlbridge/bridge"
)

// /readyz is 200 when every check passes and 503 naming the failing check
// otherwise, while /healthz stays 200 either way.
func TestReadyz(t *testing.T) {
	t.Parallel()
	var wpErr error
	syncer, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber",
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id"}, unusedUsers{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{AccessKey: fuzzKey}, Deps{Syncer: syncer, Dispatcher: &recordingDispatcher{},
		Ready: []ReadyCheck{
			{Name: "store", Check: func(context.Context) error { return nil }},
			{Name: "wordpress", Check: func(context.Context) error { return wpErr }},
		}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: not JSON: %q", path, rec.Body)
		}
		return rec.Code, body
	}
	for _, tc := range []struct {
		name   string
		wpErr  error
		status int
		want   string
		wp     string
	}{
		{"ready", nil, http.StatusOK, "ready", "ok"},
		{"wordpress down", errors.New("WordPress did not answer: connection refused"), http.StatusServiceUnavailable, "not ready",
			"WordPress did not answer: connection refused"},
	} {
		wpErr = tc.wpErr
		code, body := get("/readyz")
		checks, _ := body["checks"].(map[string]any)
		if code != tc.status || body["status"] != tc.want || checks["wordpress"] != tc.wp || checks["store"] != "ok" {
			t.Errorf("%s: /readyz = %d %v; want %d %q with wordpress %q and store ok", tc.name, code, body, tc.status, tc.want, tc.wp)
		}
		if code, _ := get("/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz = %d; want 200 (liveness only)", tc.name, code)
		}
	}
}
