package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// passwordFieldKey is the HighLevel custom field every test bridge returns
// generated passwords to (BRIDGE_RETURN_PASSWORD_FIELD), so that the fake
// HighLevel receives real passwords the logs must never show.
const passwordFieldKey = "wp_password"

// world is what one test's bridge processes share: a fake HighLevel, a
// store, an access key. Its output buffers (every process's log, every
// command's stdout and stderr) are checked for secrets when the test ends.
type world struct {
	t     *testing.T
	hl    *highleveltest.Server
	field highlevel.CustomField // the return-password field
	key   string
	dsn   string
	wp    *wordpress.Client // the test's own client, for checks

	mu      sync.Mutex
	outputs []*testkit.LogBuffer
	store   *queue.Store
	queue   *queue.Queue // insert-only, on the store, for reading events
}

// newWorld makes a world with a fresh fake HighLevel (rate limiting off:
// it has its own tests) and the store dsn ("" for a SQLite file in a temp dir).
func newWorld(t *testing.T, dsn string) *world {
	t.Helper()
	w := &world{t: t, key: "key-" + testkit.RandomID(24), dsn: dsn}
	// Registered first, so it runs last: after every process is gone.
	t.Cleanup(w.checkNoSecrets)
	if w.dsn == "" {
		w.dsn = filepath.Join(t.TempDir(), "hlbridge.db")
	}
	w.hl = highleveltest.New(t)
	w.hl.SetBurst(0, 0)
	w.field = w.hl.AddCustomField(highlevel.CustomField{Name: "WP Password", FieldKey: "contact." + passwordFieldKey})
	wp, err := wordpress.New(wordpress.Config{URL: site.URL, Username: site.Username, AppPassword: site.AppPassword, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.wp = wp
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.store != nil {
			w.store.Close()
		}
	})
	return w
}

// env is the bridge's environment; overrides are KEY=VALUE and win.
func (w *world) env(overrides ...string) []string {
	vars := map[string]string{
		"WORDPRESS_URL":                site.URL,
		"WORDPRESS_USERNAME":           site.Username,
		"WORDPRESS_APP_PASSWORD":       site.AppPassword,
		"HIGHLEVEL_TOKEN":              w.hl.Token,
		"HIGHLEVEL_API_URL":            w.hl.URL,
		"HIGHLEVEL_LOCATION_ID":        w.hl.LocationID,
		"BRIDGE_ACCESS_KEY":            w.key,
		"BRIDGE_DATABASE":              w.dsn,
		"BRIDGE_LOG_LEVEL":             "debug",
		"BRIDGE_ALLOWED_ROLES":         "customer",
		"BRIDGE_RETURN_PASSWORD_FIELD": passwordFieldKey,
		// Small, so that River's rescue (a last resort: a killed process's
		// jobs are taken over by the bridge itself) stays bounded.
		"BRIDGE_JOB_TIMEOUT":      "5s",
		"BRIDGE_RESCUE_AFTER":     "6s",
		"BRIDGE_RETRY_BASE":       "200ms",
		"BRIDGE_SHUTDOWN_TIMEOUT": "5s",
	}
	for _, o := range overrides {
		k, v, _ := strings.Cut(o, "=")
		vars[k] = v
	}
	var env []string
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// start starts a bridge process in this world.
func (w *world) start(name string, overrides ...string) *proc {
	w.t.Helper()
	return startBinary(w.t, name, w.env(overrides...), w.track)
}

// cli runs an operator command on this world's store.
func (w *world) cli(args ...string) cliResult {
	w.t.Helper()
	return runCLI(w.t, []string{"BRIDGE_DATABASE=" + w.dsn}, w.track, args...)
}

// track adds an output buffer to those checked for secrets.
func (w *world) track(b *testkit.LogBuffer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outputs = append(w.outputs, b)
}

// checkNoSecrets fails the test if any process's log or command's output
// holds the access key, the WordPress application password, the HighLevel
// token, or a password the bridge returned to HighLevel.
func (w *world) checkNoSecrets() {
	t := w.t
	w.mu.Lock()
	var all strings.Builder
	for _, b := range w.outputs {
		all.WriteString(b.String())
	}
	w.mu.Unlock()
	logs := all.String()
	secrets := map[string]string{"the access key": w.key, "the WordPress application password": site.AppPassword}
	if w.hl != nil {
		secrets["the HighLevel token"] = w.hl.Token
		for i, p := range w.returnedPasswords() {
			secrets[fmt.Sprintf("returned password #%d", i+1)] = p
		}
	}
	for name, secret := range secrets {
		if secret == "" {
			t.Errorf("%s is empty: the secret check proves nothing", name)
			continue
		}
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in the bridge's output", name)
		}
	}
}

// returnedPasswords are the values the bridge wrote to the password field.
func (w *world) returnedPasswords() []string {
	var out []string
	for _, wr := range w.hl.Writes() {
		fields, _ := wr.Body["customFields"].([]any)
		for _, f := range fields {
			m, _ := f.(map[string]any)
			if v, ok := m["field_value"].(string); ok && v != "" && (m["id"] == w.field.ID || m["key"] == w.field.FieldKey) {
				out = append(out, v)
			}
		}
	}
	return out
}

// contacts seeds n contacts with unique emails in the fake HighLevel.
func (w *world) contacts(n int) []highlevel.Contact {
	w.t.Helper()
	var cs []highlevel.Contact
	for i := range n {
		cs = append(cs, w.hl.PutContact(highlevel.Contact{
			FirstName: fmt.Sprintf("First%03d", i), LastName: "Storm",
			Email: wordpresstest.UniqueEmail(w.t), Tags: []string{"storm", fmt.Sprintf("t%d", i%5)},
		}))
	}
	return cs
}

// editContact changes a contact the way a HighLevel user would: through
// the API (PUT /contacts/{id}), leaving its other fields as they are.
func (w *world) editContact(id, firstName string, tags []string) error {
	body, _ := json.Marshal(map[string]any{"firstName": firstName, "tags": tags})
	req, err := http.NewRequest(http.MethodPut, w.hl.URL+"/contacts/"+id, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.hl.Token)
	req.Header.Set("Version", highlevel.APIVersion)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("edit contact %s: %s", id, resp.Status)
	}
	return nil
}

// webhookReply is the part of the bridge's answer the tests read.
type webhookReply struct {
	Status  string `json:"status"`
	EventID int64  `json:"event_id"`
	Error   string `json:"error"`
}

// webhook sends WP Fusion's URL to the bridge at base. n makes each
// webhook of a storm a distinct delivery (HighLevel's retries repeat one).
func (w *world) webhook(client *http.Client, base, action, contactID string, n int) (int, webhookReply, error) {
	q := url.Values{"wpf_action": {action}, "access_key": {w.key}, "contact_id": {contactID}, "n": {strconv.Itoa(n)}}
	resp, err := client.Post(base+"/?"+q.Encode(), "", nil)
	if err != nil {
		return 0, webhookReply{}, err
	}
	defer resp.Body.Close()
	var r webhookReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return resp.StatusCode, r, fmt.Errorf("answer is not JSON: %w", err)
	}
	return resp.StatusCode, r, nil
}

// storeQueue opens the world's store in the test process, once, to read
// its events (an insert-only queue: no workers).
func (w *world) storeQueue() *queue.Queue {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queue != nil {
		return w.queue
	}
	store, err := queue.OpenStore(context.Background(), w.dsn)
	if err != nil {
		w.t.Fatalf("open the store: %v", err)
	}
	q, err := queue.New(store, nil, queue.Config{})
	if err != nil {
		store.Close()
		w.t.Fatal(err)
	}
	w.store, w.queue = store, q
	return q
}

// waitDrained waits until the store holds no queued event.
func (w *world) waitDrained(timeout time.Duration) {
	w.t.Helper()
	q := w.storeQueue()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := q.Events(context.Background(), bridge.EventFilter{Status: bridge.StatusQueued, Limit: 5})
		if err != nil {
			w.t.Fatal(err)
		}
		if len(evs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("events still queued after %s, e.g. %+v", timeout, evs)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runningJobs counts River jobs the store shows as running.
func (w *world) runningJobs() int {
	w.t.Helper()
	var db *sql.DB
	var err error
	if strings.HasPrefix(w.dsn, "postgres") {
		db, err = sql.Open("pgx", w.dsn)
	} else {
		db, err = sql.Open("sqlite", "file:"+w.dsn+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&n); err != nil {
		w.t.Fatalf("count running jobs: %v", err)
	}
	return n
}

// listEvents runs "hlbridge events list --json" and decodes its answer.
func (w *world) listEvents(args ...string) []bridge.Event {
	w.t.Helper()
	r := w.cli(append([]string{"events", "list", "--json", "--limit", "10000"}, args...)...)
	if r.code != 0 {
		w.t.Fatalf("events list: exit %d: %s", r.code, r.stderr)
	}
	var evs []bridge.Event
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil {
		w.t.Fatalf("events list --json printed no JSON list: %v\n%s", err, r.stdout)
	}
	return evs
}

// checkEvents asserts, through the events command, that the store holds
// exactly total events, all done, among them every acknowledged one.
// resent is how many webhooks may have been stored twice: sent again after
// a process died between committing and answering them (see storm.resent).
func (w *world) checkEvents(acked []int64, total, resent int) {
	w.t.Helper()
	evs := w.listEvents()
	byID := map[int64]bridge.Event{}
	statuses := map[string]int{}
	for _, e := range evs {
		byID[e.ID] = e
		statuses[e.Status]++
	}
	// A webhook the process committed but died before answering is sent
	// again, and workflow webhooks are never deduplicated, so it may be
	// stored (and applied, harmlessly) twice. Fewer than total would be a
	// lost webhook.
	if len(evs) < total || len(evs) > total+resent || statuses[bridge.StatusDone] != len(evs) {
		w.t.Errorf("the store holds %d events %v; want %d to %d, all done", len(evs), statuses, total, total+resent)
	}
	missing, notDone := 0, 0
	for _, id := range acked {
		e, ok := byID[id]
		switch {
		case !ok:
			missing++
		case e.Status != bridge.StatusDone:
			notDone++
			if notDone <= 3 {
				w.t.Errorf("acknowledged event %d is %s: %s", id, e.Status, e.Error)
			}
		}
	}
	if missing > 0 || notDone > 0 {
		w.t.Errorf("of %d acknowledged webhooks, %d events are missing and %d not done", len(acked), missing, notDone)
	}
}

// checkUsers asserts that every contact has exactly one WordPress user,
// found by its contact id and by its email, in the contact's final state in
// the fake HighLevel (first name, tags), and that the password HighLevel
// received for it logs in.
func (w *world) checkUsers(cs []highlevel.Contact) {
	w.t.Helper()
	t := w.t
	ctx := context.Background()
	var emails []string
	for _, c := range cs {
		emails = append(emails, c.Email)
	}
	counts := map[string]int{}
	out := site.Eval(t, `$n = array();
foreach ($args as $e) { $n[$e] = count(get_users(array('search' => $e, 'search_columns' => array('user_email'), 'fields' => 'ID'))); }
echo json_encode($n);`, emails...)
	if err := json.Unmarshal([]byte(out), &counts); err != nil {
		t.Fatalf("count users by email: %v: %s", err, out)
	}
	var failures atomic.Int64
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fail := func(format string, args ...any) {
				if failures.Add(1) <= 10 {
					t.Errorf("contact %s (%s): "+format, append([]any{c.ID, c.Email}, args...)...)
				}
			}
			want, _ := w.hl.Contact(c.ID)
			if n := counts[c.Email]; n != 1 {
				fail("%d users have its email, want 1", n)
			}
			ids, err := w.wp.UsersByMeta(ctx, "highlevel_contact_id", c.ID)
			if err != nil || len(ids) != 1 {
				fail("users linked by contact id: %v %v, want exactly one", ids, err)
				return
			}
			u, err := w.wp.UserByEmail(ctx, c.Email)
			if err != nil {
				fail("user by email: %v", err)
				return
			}
			if u.ID != ids[0] {
				fail("the user with its email is %d, the one linked to it %d", u.ID, ids[0])
			}
			if u.FirstName != want.FirstName {
				fail("first name %q, HighLevel says %q (an update was lost)", u.FirstName, want.FirstName)
			}
			m, err := w.wp.Meta(ctx, u.ID, "highlevel_tags")
			if err != nil {
				fail("meta: %v", err)
				return
			}
			tags, _ := m["highlevel_tags"].([]string)
			if strings.Join(tags, ",") != strings.Join(want.Tags, ",") {
				fail("tags %q, HighLevel says %q (an update was lost)", tags, want.Tags)
			}
			password, _ := want.Custom(w.field.ID)
			if password == "" {
				fail("HighLevel never received the user's password")
			} else if !site.LoginWorks(t, c.Email, password) {
				fail("the password HighLevel holds does not log in to WordPress")
			}
		}()
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d contacts are wrong in WordPress", n, len(cs))
	}
}

// storm sends perContact webhooks to each contact, each contact's in order
// (the first is add, the last update), many contacts at once. Before
// webhook editAt, the contacts edit selects are changed in HighLevel, so
// that only the webhooks after the change carry the final state.
type storm struct {
	w          *world
	contacts   []highlevel.Contact
	perContact int
	editAt     int
	edit       func(i int) bool
	target     func(contact, n int) string // the bridge's base URL for a webhook

	mu       sync.Mutex
	next     []int   // per contact, the first webhook not acknowledged
	acked    []int64 // the event ids of acknowledged webhooks
	rejected []string
	acks     atomic.Int64
	sends    int // calls of send
}

// resent bounds the webhooks sent more than once: those in flight when a
// send was cut off, sent again by the next.
func (s *storm) resent() int { return stormInFlight * max(0, s.sends-1) }

func newStorm(w *world, cs []highlevel.Contact, perContact, editAt int, edit func(int) bool) *storm {
	return &storm{w: w, contacts: cs, perContact: perContact, editAt: editAt, edit: edit, next: make([]int, len(cs))}
}

// action is webhook n's action: add first, update last, a mix between.
func (s *storm) action(n int) string {
	switch {
	case n == 0:
		return "add"
	case n == s.perContact-1:
		return "update"
	}
	return []string{"update", "update_tags", "add"}[n%3]
}

// total is how many webhooks the storm sends.
func (s *storm) total() int { return len(s.contacts) * s.perContact }

// stormInFlight is how many webhooks a storm sends at once.
const stormInFlight = 16

// send sends every webhook not yet acknowledged, stormInFlight at a time. A contact
// stops at its first webhook that is not answered (the process died): the
// rest are sent by the next call. onAck sees the running count of acks.
func (s *storm) send(onAck func(int64)) {
	s.sends++
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	sem := make(chan struct{}, stormInFlight)
	var wg sync.WaitGroup
	for i := range s.contacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c := s.contacts[i]
			for n := s.next[i]; n < s.perContact; n++ {
				if n == s.editAt && s.edit(i) {
					if err := s.w.editContact(c.ID, c.FirstName+"-v2", append(slices.Clone(c.Tags), "changed")); err != nil {
						s.reject(err.Error())
						return
					}
				}
				status, r, err := s.w.webhook(client, s.target(i, n), s.action(n), c.ID, n)
				if err != nil {
					return // the process is gone; sent again later
				}
				if status != http.StatusAccepted { // a workflow webhook is never a "duplicate"
					s.reject(fmt.Sprintf("%s for %s #%d: %d %+v", s.action(n), c.ID, n, status, r))
					return
				}
				s.mu.Lock()
				s.acked = append(s.acked, r.EventID)
				s.next[i] = n + 1
				s.mu.Unlock()
				if onAck != nil {
					onAck(s.acks.Add(1))
				}
			}
		}()
	}
	wg.Wait()
}

func (s *storm) reject(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, msg)
}

// unsent is how many webhooks are not acknowledged yet.
func (s *storm) unsent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, next := range s.next {
		n += s.perContact - next
	}
	return n
}
