package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hlbridge/hlbridge/bridge"
)

// recordingDispatcher is a Dispatcher that keeps what it is given and
// accepts everything; it never fails, so the intake never has a reason to
// answer 503.
type recordingDispatcher struct {
	mu   sync.Mutex
	reqs []bridge.Request
}

func (d *recordingDispatcher) Dispatch(_ context.Context, req bridge.Request, _ bridge.Delivery) (bridge.Outcome, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, req)
	return bridge.Outcome{EventID: int64(len(d.reqs))}, nil
}

// unusedUsers and unusedContacts stand in for the doors where the intake
// never reaches them: the recording dispatcher applies nothing. A call
// would panic on the nil interface.
type (
	unusedUsers    struct{ bridge.Users }
	unusedContacts struct{ bridge.Contacts }
)

func (d *recordingDispatcher) take() []bridge.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.reqs
	d.reqs = nil
	return r
}

// fuzzKey is the access key of the fuzzed server; "KEY" in a fuzzed target
// stands for it, so the fuzzer gets past the key check.
const fuzzKey = "fuzz-access-key-0123456789"

// FuzzIntake sends arbitrary requests (method, path and query, content
// type, body, the key in X-Access-Key or not, token or payload mode)
// through the real gin handler, with a recording dispatcher. Whatever comes
// in: no panic and no 5xx, every answer a JSON object with a status, and
// whatever is dispatched has a HighLevel contact id, an action that does
// work (never test), an allowed role, and in payload mode the contact.
// Run:
//
//	go test ./bridge/httpapi -run '^$' -fuzz FuzzIntake -fuzztime 2m -fuzzminimizetime 2s
//
// It needs no WordPress and no database.
func FuzzIntake(f *testing.F) {
	for _, s := range []struct {
		method, target, ct string
		body               string
		header, payload    bool
	}{
		{"POST", "/?wpf_action=add&access_key=KEY&contact_id=abc123", "", "", false, false},
		{"GET", "/?wpf_action=update&access_key=KEY&contact_id=abc123&role=customer&sync=true", "", "", false, false},
		{"POST", "/?wpf_action=add&access_key=KEY", "application/json", `{"contact_id":"abc123","email":"a@example.test","tags":"a,b"}`, false, true},
		{"POST", "/hooks/highlevel/update_tags?contact_id=abc123", "application/json", `{"contact_id":"x"}`, true, false},
		{"POST", "/hooks/highlevel/test", "", "", true, false},
		{"POST", "/?wpf_action=add&access_key=KEY&contact_id=abc123&contact_id=def", "", "", false, false},
		{"POST", "/?wpf_action=add&access_key=KEY&contact_id=a%0D%0Ab", "", "", false, false},
		{"POST", "/?wpf_action=add&access_key=KEY", "text/plain", `{"contact_id":{"$ne":null}}`, false, false},
		{"POST", "/?wpf_action=add&access_key=KEY", "application/xml", `<a/>`, false, false},
		{"POST", "/hooks/highlevel/app", "application/json", `{"type":"ContactUpdate","id":"abc"}`, false, false},
		{"PUT", "/hooks/highlevel/add/", "", "", true, false},
		{"POST", "/?wpf_action=add&access_key=wrong&contact_id=abc123", "", "", false, false},
	} {
		f.Add(s.method, s.target, s.ct, []byte(s.body), s.header, s.payload)
	}
	servers := map[bool]*Server{}
	dispatch := &recordingDispatcher{}
	for _, payload := range []bool{false, true} {
		var contacts bridge.Contacts
		if !payload {
			contacts = unusedContacts{}
		}
		syncer, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber", AllowedRoles: []string{"customer"},
			TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id"}, unusedUsers{}, contacts, nil)
		if err != nil {
			f.Fatal(err)
		}
		srv, err := NewServer(Config{AccessKey: fuzzKey, MaxBodyBytes: 4096}, Deps{Syncer: syncer, Dispatcher: dispatch})
		if err != nil {
			f.Fatal(err)
		}
		servers[payload] = srv
	}
	f.Fuzz(func(t *testing.T, method, target, contentType string, body []byte, keyHeader, payload bool) {
		target = strings.ReplaceAll(target, "KEY", fuzzKey)
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return // no HTTP server hands the handler such a request
		}
		req := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "bridge.test", RemoteAddr: "192.0.2.1:1234",
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if keyHeader {
			req.Header.Set("X-Access-Key", fuzzKey)
		}
		dispatch.take()
		rec := httptest.NewRecorder()
		servers[payload].ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body)
		}
		if method != http.MethodHead && !bytes.HasPrefix(rec.Body.Bytes(), []byte(`{`)) {
			t.Fatalf("%s %q: %d, answer is not a JSON object: %q", method, target, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), fuzzKey) {
			t.Fatalf("%s %q: the answer holds the access key: %s", method, target, rec.Body)
		}
		reqs := dispatch.take()
		if len(reqs) > 1 {
			t.Fatalf("%s %q: dispatched %d requests", method, target, len(reqs))
		}
		for _, r := range reqs {
			if rec.Code != http.StatusAccepted {
				t.Errorf("dispatched, answered %d", rec.Code)
			}
			if !contactIDPattern.MatchString(r.ContactID) {
				t.Errorf("dispatched contact id %q", r.ContactID)
			}
			if a, ok := bridge.ParseAction(string(r.Action)); !ok || a == bridge.ActionTest {
				t.Errorf("dispatched action %q", r.Action)
			}
			if r.Role != "" && r.Role != "customer" && r.Role != "subscriber" {
				t.Errorf("dispatched role %q", r.Role)
			}
			if payload && r.Contact == nil {
				t.Error("dispatched in payload mode without the contact")
			}
		}
	})
}
