package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// envFunc is getenv over a KEY=VALUE list.
func envFunc(env []string) func(string) string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// maxInWindow is the most requests that match keep, among reqs, within any
// window.
func maxInWindow(reqs []highleveltest.Request, window time.Duration, keep func(highleveltest.Request) bool) int {
	var at []time.Time
	for _, r := range reqs {
		if keep(r) {
			at = append(at, r.At)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= window {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// "hlbridge import" of 500 tagged contacts (among untagged ones), paged
// 100 at a time, is interrupted halfway and run again: it resumes from
// its saved cursor, so every tagged contact is queued exactly once, and
// the running server gives each exactly one user. HighLevel's budget holds:
// at HighLevel's real limit (100 per 10 s, shared by the server's 80 and
// the import's 10) no request is answered 429.
func TestImportResumesAfterInterrupt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	w.hl.SetBurst(highleveltest.DefaultBurst, highleveltest.DefaultBurstWindow)
	const tag = "import-me"
	var tagged, untagged []highlevel.Contact
	for i := range 540 {
		c := highlevel.Contact{FirstName: fmt.Sprintf("Imp%03d", i), LastName: "Port", Email: wordpresstest.UniqueEmail(t), Tags: []string{"other"}}
		if i%11 != 0 || len(untagged) == 40 {
			c.Tags = append(c.Tags, tag)
			tagged = append(tagged, w.hl.PutContact(c))
		} else {
			untagged = append(untagged, w.hl.PutContact(c))
		}
	}
	if len(tagged) != 500 || len(untagged) != 40 {
		t.Fatalf("seeded %d tagged and %d untagged contacts", len(tagged), len(untagged))
	}
	w.start("server", "HIGHLEVEL_REQUESTS_PER_10S=80", "BRIDGE_RETURN_PASSWORD_FIELD=")
	getenv := envFunc(w.env("HIGHLEVEL_REQUESTS_PER_10S=10", "BRIDGE_RETURN_PASSWORD_FIELD="))
	args := []string{"hlbridge", "import", "--tag", "Import-Me", "--action", "add", "--page-size", "100"}
	q := w.storeQueue()
	queued := func() int {
		evs, err := q.Events(context.Background(), bridge.EventFilter{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	// First run: cancelled (as Ctrl-C does) once about half is queued.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &testkit.LogBuffer{}, &testkit.LogBuffer{}
	w.track(stdout)
	w.track(stderr)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, getenv, stdout, stderr) }()
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-errc:
			t.Fatalf("the import ended before it was interrupted: %v\n%s", err, stdout)
		case <-time.After(20 * time.Millisecond):
			if queued() >= 250 {
				cancel()
				err, waiting = <-errc, false
			}
		}
	}
	first := queued()
	t.Logf("interrupted with %d contacts queued: %v\n%s", first, err, stdout)
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Errorf("the interrupted import returned %v", err)
	}
	states, _ := filepath.Glob(w.dsn + ".import-*.json")
	if len(states) != 1 {
		t.Fatalf("progress files beside the store: %v, want one", states)
	}
	var st importState
	if b, err := os.ReadFile(states[0]); err != nil || json.Unmarshal(b, &st) != nil || st.Queued != first || len(st.SearchAfter) == 0 {
		t.Fatalf("progress file %s: %+v (%v); want %d queued and a cursor", states[0], st, err, first)
	}
	if first >= 500 {
		t.Fatalf("all %d contacts were queued before the interrupt: nothing left to resume", first)
	}

	// Second run: resumes, does not start over.
	stdout2 := &testkit.LogBuffer{}
	w.track(stdout2)
	if err := run(context.Background(), args, getenv, stdout2, stderr); err != nil {
		t.Fatalf("the resumed import: %v\n%s", err, stdout2)
	}
	t.Logf("resumed:\n%s", stdout2)
	for _, want := range []string{fmt.Sprintf("%d contacts queued so far", first), "import done: 500 contacts queued for add"} {
		if !strings.Contains(stdout2.String(), want) {
			t.Errorf("the resumed import did not say %q", want)
		}
	}
	if states, _ := filepath.Glob(w.dsn + ".import-*.json"); len(states) != 0 {
		t.Errorf("progress files left after the import completed: %v", states)
	}

	start := time.Now()
	w.waitDrained(5 * time.Minute)
	t.Logf("the server drained the import in %s", time.Since(start).Round(time.Second))
	evs := w.listEvents()
	contacts := map[string]int{}
	for _, e := range evs {
		contacts[e.ContactID]++
		if e.Status != bridge.StatusDone || e.Action != bridge.ActionAdd {
			t.Errorf("event %d for %s: %s %s %s", e.ID, e.ContactID, e.Action, e.Status, e.Error)
		}
	}
	if len(evs) != 500 || len(contacts) != 500 {
		t.Errorf("%d events for %d contacts; want 500 for 500: each tagged contact queued once", len(evs), len(contacts))
	}
	for _, c := range tagged {
		if contacts[c.ID] != 1 {
			t.Errorf("tagged contact %s queued %d times", c.ID, contacts[c.ID])
		}
	}

	var emails []string
	for _, c := range append(slices.Clone(tagged), untagged...) {
		emails = append(emails, c.Email)
	}
	counts := map[string]int{}
	out := site.Eval(t, `$n = array();
foreach ($args as $e) { $n[$e] = count(get_users(array('search' => $e, 'search_columns' => array('user_email'), 'fields' => 'ID'))); }
echo json_encode($n);`, emails...)
	if err := json.Unmarshal([]byte(out), &counts); err != nil {
		t.Fatalf("count users: %v: %s", err, out)
	}
	wrong := 0
	for _, c := range tagged {
		if counts[c.Email] != 1 {
			wrong++
		}
	}
	for _, c := range untagged {
		if counts[c.Email] != 0 {
			t.Errorf("untagged contact %s got %d users", c.ID, counts[c.Email])
		}
	}
	if wrong > 0 {
		t.Errorf("%d of 500 tagged contacts do not have exactly one user", wrong)
	}

	reqs := w.hl.Requests()
	var limited []highleveltest.Request
	for _, r := range reqs {
		if r.Status == 429 {
			limited = append(limited, r)
		}
	}
	all := maxInWindow(reqs, 10*time.Second, func(highleveltest.Request) bool { return true })
	search := maxInWindow(reqs, 10*time.Second, func(r highleveltest.Request) bool { return r.Path == "/contacts/search" })
	t.Logf("HighLevel: %d requests, at most %d (%d searches) in any 10 s", len(reqs), all, search)
	if len(limited) > 0 {
		t.Errorf("%d requests were answered 429, e.g. %+v", len(limited), limited[0])
	}
	if all > highleveltest.DefaultBurst || search > 11 {
		t.Errorf("at most %d requests (%d searches) in a 10 s window; the budget is 100 (the import's 10, plus its burst of 1)", all, search)
	}
	for _, body := range w.hl.Searches() {
		if _, ok := body["page"]; ok || body["pageLimit"] != 100.0 {
			t.Errorf("a search was paged with page or another size: %v", body)
		}
	}
}

// "import --dry-run" counts the users that would be created, updated or
// left alone, and the contacts skipped, with the rules' own plan; it sends
// WordPress and HighLevel no write and queues nothing. Payload mode is
// refused, and --help says where progress is kept.
func TestImportDryRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	const tag = "dry-import"
	var cs []highlevel.Contact
	for i := range 5 {
		c := highlevel.Contact{FirstName: fmt.Sprintf("Dry%d", i), Email: wordpresstest.UniqueEmail(t)}
		if i < 4 {
			c.Tags = []string{tag}
		}
		cs = append(cs, w.hl.PutContact(c))
	}
	for _, c := range cs[:2] {
		if r := w.command(nil, "sync", c.ID, "--action", "add"); r.code != 0 {
			t.Fatalf("sync: %s", r.stderr)
		}
	}
	if err := w.editContact(cs[1].ID, "Changed", []string{tag}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(site.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newSwitchProxy(t, u.Host)
	env := []string{"WORDPRESS_URL=http://" + proxy.addr}
	since, hlWrites := time.Now(), len(w.hl.Writes())
	for _, tt := range []struct {
		action string
		want   []string
	}{
		{"update", []string{"dry run (update) of 4 contacts: 0 users would be created, 1 updated, 1 left as they are; 2 contacts skipped",
			"skipped 2: no WordPress user (use --action add to create them)"}},
		{"add", []string{"dry run (add) of 4 contacts: 2 users would be created, 1 updated, 1 left as they are; 0 contacts skipped"}},
	} {
		r := w.command(env, "import", "--tag", tag, "--dry-run", "--action", tt.action)
		t.Logf("import --dry-run --action %s:\n%s", tt.action, r.stdout)
		for _, want := range tt.want {
			if r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Errorf("exit %d; want %q in:\n%s%s", r.code, want, r.stdout, r.stderr)
			}
		}
	}
	if n := proxy.writesSince(since); n > 0 {
		t.Errorf("the dry runs sent WordPress %d writes", n)
	}
	if n := len(w.hl.Writes()) - hlWrites; n > 0 {
		t.Errorf("the dry runs wrote to HighLevel %d times", n)
	}
	if evs := w.listEvents(); len(evs) != 0 {
		t.Errorf("the dry runs queued %d events", len(evs))
	}
	if states, _ := filepath.Glob(w.dsn + ".import-*"); len(states) != 0 {
		t.Errorf("the dry runs saved progress: %v", states)
	}

	if r := w.command([]string{"HIGHLEVEL_TOKEN=", "BRIDGE_RETURN_PASSWORD_FIELD="}, "import"); r.code == 0 || !strings.Contains(r.stderr, "import: needs HIGHLEVEL_TOKEN") {
		t.Errorf("import in payload mode: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := w.command(nil, "import", "--help"); r.code != 0 || !strings.Contains(r.stdout, "BRIDGE_DATABASE.import-KEY.json") {
		t.Errorf("import --help: exit %d, stdout %q", r.code, r.stdout)
	}
}

// On a terminal the progress is one redrawn bar with counts and an
// estimate; elsewhere, a plain line per page.
func TestImportProgress(t *testing.T) {
	t.Parallel()
	var tty, plain strings.Builder
	bar := &progress{out: &tty, tty: true}
	lines := &progress{out: &plain}
	for _, p := range []*progress{bar, lines} {
		p.begin(0)
		p.start = p.start.Add(-2 * time.Second)
		p.update(100, 400, "queued")
		p.page(100, 400, "queued")
		p.end()
	}
	if want := "\r\033[K[=======                       ] 100/400 queued (25%), 50/s, about 6s left\n"; tty.String() != want {
		t.Errorf("bar %q, want %q", tty.String(), want)
	}
	if want := "queued 100 of 400 contacts (25%), 50/s, about 6s left\n"; plain.String() != want {
		t.Errorf("plain %q, want %q", plain.String(), want)
	}
	if isTerminal(&plain) {
		t.Errorf("a buffer taken for a terminal")
	}
}
