package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/bridgetest"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/highlevel/highleveltest"
	"github.com/hlbridge/hlbridge/wordpress"
)

// drainOpts are the drain command's flags.
type drainOpts struct {
	contacts, perContact, clients, wpConcurrency int
	store, pgURL, page                           string
	idle, sampleEvery, timeout, settle, poll     time.Duration
	verify, fixed                                bool
}

// runDrain sends a storm of webhooks (perContact rounds over contacts,
// each round a bulk edit of every contact) to a bridge wired as
// cmd/hlbridge serves, against a real WordPress, and measures how long the
// queue takes to accept and to drain it, what it sent WordPress and
// HighLevel, and how an ordinary page of the site answers meanwhile.
func runDrain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hlbench drain", flag.ContinueOnError)
	var o drainOpts
	siteDir := fs.String("site", "", "directory of a running test WordPress (start.sh's DIR); default: start one and stop it after")
	modes := fs.String("modes", "token,payload", "token (contacts loaded from the fake HighLevel) and/or payload (contacts in the webhook bodies)")
	fs.IntVar(&o.contacts, "contacts", 1000, "contacts")
	fs.IntVar(&o.perContact, "per-contact", 10, "webhooks per contact (rounds of the storm)")
	fs.IntVar(&o.clients, "clients", 16, "concurrent senders of the storm")
	fs.IntVar(&o.wpConcurrency, "wp-concurrency", 4, "BRIDGE_WORDPRESS_CONCURRENCY: queue workers, and the bound of the adaptive limit on WordPress requests in flight")
	fs.BoolVar(&o.fixed, "fixed", false, "keep --wp-concurrency requests allowed in flight instead of the adaptive limit, to compare the two")
	fs.DurationVar(&o.settle, "settle-window", time.Second, "BRIDGE_SETTLE_WINDOW: a contact's sync starts this long after its first waiting webhook; 0: none")
	fs.DurationVar(&o.poll, "poll-interval", 0, "how often idle workers look for due jobs (queue.Config.PollInterval); 0: the queue's default")
	fs.StringVar(&o.store, "store", "sqlite", "the queue's store: sqlite or postgres")
	fs.StringVar(&o.pgURL, "postgres", "", "PostgreSQL server URL on loopback, for --store postgres")
	fs.StringVar(&o.page, "page", "/", "the site page sampled during the storm")
	fs.DurationVar(&o.idle, "idle", 10*time.Second, "how long the page is sampled idle before the storm")
	fs.DurationVar(&o.sampleEvery, "sample-every", 200*time.Millisecond, "page sampling interval")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up if the queue has not drained by then")
	fs.BoolVar(&o.verify, "verify", true, "after the drain, check every contact has one user with its final first name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.store == "postgres" && o.pgURL == "" {
		return errors.New("--store postgres needs --postgres URL")
	}
	head := machine()

	site, stopSite, err := openSite(ctx, *siteDir)
	if err != nil {
		return err
	}
	defer stopSite()
	var results []*drainResult
	for _, mode := range splitList(*modes) {
		if mode != "token" && mode != "payload" {
			return fmt.Errorf("--modes: unknown mode %q", mode)
		}
		r, err := drainOnce(ctx, site, mode, o)
		if err != nil {
			return fmt.Errorf("%s mode: %w", mode, err)
		}
		results = append(results, r)
	}
	printDrain(os.Stdout, head, o, results)
	return nil
}

// site is a running test WordPress, from DIR/site.env.
type site struct{ dir, url, username, appPassword string }

func loadSite(dir string) (*site, error) {
	b, err := os.ReadFile(filepath.Join(dir, "site.env"))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`)
		}
		env[k] = v
	}
	s := &site{dir: dir, url: strings.TrimRight(env["WORDPRESS_URL"], "/"), username: env["WORDPRESS_USERNAME"],
		appPassword: env["WORDPRESS_APP_PASSWORD"]}
	if s.url == "" || s.username == "" || s.appPassword == "" {
		return nil, fmt.Errorf("%s/site.env lacks WORDPRESS_URL, WORDPRESS_USERNAME or WORDPRESS_APP_PASSWORD", dir)
	}
	return s, nil
}

// openSite loads the running test WordPress in dir, or, when dir is "",
// starts one; stop stops what it started.
func openSite(ctx context.Context, dir string) (s *site, stop func(), err error) {
	stop = func() {}
	if dir == "" {
		if dir, stop, err = startSite(ctx); err != nil {
			return nil, nil, err
		}
	}
	if s, err = loadSite(dir); err != nil {
		stop()
		return nil, nil, err
	}
	return s, stop, nil
}

// startSite runs testdata/wordpress/start.sh (found above the working
// directory) and returns the site's DIR and a func that runs stop.sh.
func startSite(ctx context.Context) (string, func(), error) {
	root, err := repoRoot()
	if err != nil {
		return "", nil, fmt.Errorf("%w, or pass --site", err)
	}
	progress("starting a test WordPress with testdata/wordpress/start.sh")
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "testdata", "wordpress", "start.sh"))
	cmd.Env = append(os.Environ(), "WP_TEST_OWNER_PID="+strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", nil, fmt.Errorf("start.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	stop := func() {
		progress("stopping the test WordPress in %s", dir)
		out, err := exec.Command("bash", filepath.Join(root, "testdata", "wordpress", "stop.sh"), dir).CombinedOutput()
		if err != nil {
			progress("stop.sh %s: %v\n%s", dir, err, out)
		}
	}
	return dir, stop, nil
}

// drainResult is what one storm showed.
type drainResult struct {
	mode                          string
	webhooks                      int
	accept                        *result
	acceptedIn, drainedIn         time.Duration
	creates, updates, metas, nots int64
	writes, reads                 int64
	hlCalls, hl429, hlOther       int
	php                           map[string]int // requests in php.log by method, during the storm
	events                        map[string]int
	checked, wrong                int
	idle, storm                   []time.Duration // page response times, sorted
	drainOnly                     []time.Duration // of them, those after the last webhook was accepted
	limits                        []int           // the WordPress concurrency limit, sampled during the storm
	lone, loneWrite               []time.Duration // lone webhooks after the drain, sorted: to applied, to their user created
	loneSync                      time.Duration   // a lone sync=true webhook, to answered
	updateTimes, lookupTimes      []time.Duration // of the bridge's user updates and lookups, sorted
	createTimes                   []time.Duration // of its creates (a lookup that created included), sorted
	pageErrs                      int
	pageStatus                    string
}

func drainOnce(ctx context.Context, s *site, mode string, o drainOpts) (*drainResult, error) {
	res := &drainResult{mode: mode, webhooks: o.contacts * o.perContact}
	tb := &standInTB{}
	defer tb.close()
	wp, err := wordpress.New(wordpress.Config{URL: s.url, Username: s.username, AppPassword: s.appPassword,
		MaxConcurrent: o.wpConcurrency, FixedConcurrency: o.fixed})
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = wp.Verify(vctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("WordPress at %s: %w", s.url, err)
	}
	timed := &timedUsers{Users: wp}
	users := &bridgetest.CountingUsers{Users: timed}
	g := newWebhooks("", "", o.contacts)

	var fake *highleveltest.Server
	var contacts bridge.Contacts
	if mode == "token" {
		fake = highleveltest.New(tb) // HighLevel's burst limit, 100 per 10 s, is on
		for n := range o.contacts {
			fake.PutContact(contactRound(g, n, 0))
		}
		hl, err := highlevel.New(fake.Config()) // the bridge's default budget, 90 per 10 s
		if err != nil {
			return nil, err
		}
		contacts = hl
	}
	dsn, removeStore, err := storeDSN(ctx, o.store, o.pgURL)
	if err != nil {
		return nil, err
	}
	defer removeStore()
	b, err := newBridge(ctx, dsn, users, contacts, queue.Config{Workers: o.wpConcurrency, SettleWindow: o.settle, PollInterval: o.poll})
	if err != nil {
		return nil, err
	}
	defer b.Store.Close()
	srv, err := serve(b.Server)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	g.base, g.key = srv.URL, b.Key
	if err := b.Queue.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b.Queue.Stop(sctx)
	}()

	phpLog := filepath.Join(s.dir, "php.log")
	var phpOffset int64
	if fi, err := os.Stat(phpLog); err == nil {
		phpOffset = fi.Size()
	}
	smp := startSampler(s.url+o.page, o.sampleEvery)
	defer smp.stop()
	progress("%s mode: sampling %s idle for %s", mode, o.page, o.idle)
	select {
	case <-time.After(o.idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res.idle, _, _ = smp.cut()

	progress("%s mode: storm of %d webhooks for %d contacts", mode, res.webhooks, o.contacts)
	c := newClient(o.clients)
	defer c.CloseIdleConnections()
	limitsDone := make(chan struct{})
	var limitsWG sync.WaitGroup
	limitsWG.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-limitsDone:
				return
			case <-t.C:
				res.limits = append(res.limits, wp.ConcurrencyLimit())
			}
		}
	})
	work := make(chan [2]int)
	var rc recorder
	start := time.Now()
	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for w := range work {
				n, r := w[0], w[1]
				if fake != nil {
					fake.PutContact(contactRound(g, n, r)) // the bulk edit, then its webhook
				}
				u, body := g.webhook(n, r, stormAction(r, o.perContact))
				t0 := time.Now()
				status, err := post(ctx, c, u, body)
				rc.add(time.Since(t0), status, err)
			}
		})
	}
feed:
	for r := range o.perContact {
		for n := range o.contacts {
			select {
			case work <- [2]int{n, r}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(work)
	wg.Wait()
	res.acceptedIn = time.Since(start)
	res.accept = rc.result(res.acceptedIn)
	acceptPhase, acceptErrs, acceptStatus := smp.cut()
	progress("%s mode: accepted %d in %s (%d not accepted); draining", mode, res.accept.ok, res.acceptedIn.Round(time.Millisecond), res.accept.errs)
	deadline := start.Add(o.timeout)
	lastReport := time.Now()
	for {
		evs, err := b.Queue.Events(ctx, bridge.EventFilter{Status: bridge.StatusQueued, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("events still queued after %s", o.timeout)
		}
		if time.Since(lastReport) > 15*time.Second {
			progress("%s mode: draining, %s; WordPress writes %d, HighLevel calls %d", mode,
				time.Since(start).Round(time.Second), users.Writes(), hlCount(fake))
			lastReport = time.Now()
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res.drainedIn = time.Since(start)
	close(limitsDone)
	limitsWG.Wait()
	smp.stop() // the samples in flight finish
	res.drainOnly, res.pageErrs, res.pageStatus = smp.cut()
	res.pageErrs += acceptErrs
	res.pageStatus = "while accepting " + acceptStatus + ", after " + res.pageStatus
	res.storm = append(slices.Clone(res.drainOnly), acceptPhase...)
	slices.Sort(res.storm)
	progress("%s mode: drained in %s", mode, res.drainedIn.Round(time.Millisecond))

	res.creates, res.updates, res.metas, res.nots = users.Creates.Load(), users.Updates.Load(), users.Metas.Load(), users.Notifications.Load()
	res.writes, res.reads = users.Writes(), users.Reads.Load()
	res.updateTimes, res.lookupTimes, res.createTimes = timed.cut()
	if fake != nil {
		for _, r := range fake.Requests() {
			res.hlCalls++
			switch {
			case r.Status == http.StatusTooManyRequests:
				res.hl429++
			case r.Status >= 300:
				res.hlOther++
			}
		}
	}
	res.php = countPHPLog(phpLog, phpOffset)
	res.events = map[string]int{}
	for _, st := range []string{bridge.StatusDone, bridge.StatusRefused, bridge.StatusFailed, bridge.StatusQueued} {
		evs, err := b.Queue.Events(ctx, bridge.EventFilter{Status: st, Limit: res.webhooks + 1})
		if err != nil {
			return nil, err
		}
		res.events[st] = len(evs)
	}
	progress("%s mode: a lone webhook, then a lone sync=true one", mode)
	if res.lone, res.loneWrite, res.loneSync, err = loneWebhooks(ctx, b.Queue, c, g, fake, o.perContact, timed); err != nil {
		return nil, err
	}
	if o.verify {
		progress("%s mode: checking every contact's user", mode)
		res.checked, res.wrong = verifyUsers(ctx, wp, g, o, fake)
	}
	return res, nil
}

// timedUsers keeps the response times of the bridge's user creates,
// updates and lookups, the requests the syncs of the storm make.
type timedUsers struct {
	bridge.Users
	mu                        sync.Mutex
	creates, updates, lookups []time.Duration
	lastWrite                 time.Time // when the last user create or update was answered
}

func (u *timedUsers) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	t0 := time.Now()
	defer func() {
		u.keep(&u.updates, t0)
		u.wrote()
	}()
	return u.Users.UpdateUser(ctx, id, up)
}

func (u *timedUsers) CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	t0 := time.Now()
	defer func() {
		u.keep(&u.creates, t0)
		u.wrote()
	}()
	return u.Users.CreateUser(ctx, nu)
}

// FindOrCreateUser counts as a create when it created, else as a lookup.
func (u *timedUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	t0 := time.Now()
	ids, found, created, err := u.Users.FindOrCreateUser(ctx, key, value, nu)
	if created {
		u.keep(&u.creates, t0)
		u.wrote()
	} else {
		u.keep(&u.lookups, t0)
	}
	return ids, found, created, err
}

func (u *timedUsers) wrote() {
	u.mu.Lock()
	u.lastWrite = time.Now()
	u.mu.Unlock()
}

func (u *timedUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	t0 := time.Now()
	defer u.keep(&u.lookups, t0)
	return u.Users.FindUser(ctx, key, value, email)
}

func (u *timedUsers) wroteAt() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastWrite
}

func (u *timedUsers) keep(into *[]time.Duration, t0 time.Time) {
	d := time.Since(t0)
	u.mu.Lock()
	*into = append(*into, d)
	u.mu.Unlock()
}

// cut returns the times so far, sorted.
func (u *timedUsers) cut() (updates, lookups, creates []time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	updates, lookups, creates = u.updates, u.lookups, u.creates
	slices.Sort(updates)
	slices.Sort(lookups)
	slices.Sort(creates)
	return updates, lookups, creates
}

// loneRuns is how many lone webhooks are timed after the drain.
const loneRuns = 5

// loneWebhooks sends, on the drained queue, loneRuns webhooks one at a
// time, each waited for until applied, and times each to its user's
// creation (written) and to applied; then a sync=true webhook, timed to
// its answer. Each is for a contact outside the storm, so that it creates
// a user and the check of the storm's users still holds.
func loneWebhooks(ctx context.Context, q *queue.Queue, c *http.Client, g *webhooks, fake *highleveltest.Server, rounds int, timed *timedUsers) (applied, written []time.Duration, loneSync time.Duration, err error) {
	last := rounds - 1
	for i := range loneRuns + 1 {
		n := g.contacts + i
		if fake != nil {
			fake.PutContact(contactRound(g, n, last))
		}
		u, body := g.webhook(n, last, "add")
		if i == loneRuns {
			start := time.Now()
			if status, err := post(ctx, c, u+"&sync=true", body); err != nil || status != http.StatusOK {
				return nil, nil, 0, fmt.Errorf("lone sync=true webhook: %d %v", status, err)
			}
			loneSync = time.Since(start)
			break
		}
		start := time.Now()
		if status, err := post(ctx, c, u, body); err != nil || status != http.StatusAccepted {
			return nil, nil, 0, fmt.Errorf("lone webhook: %d %v", status, err)
		}
		for {
			evs, err := q.Events(ctx, bridge.EventFilter{Status: bridge.StatusQueued, Limit: 1})
			if err != nil {
				return nil, nil, 0, err
			}
			if len(evs) == 0 {
				break
			}
			if time.Since(start) > time.Minute {
				return nil, nil, 0, errors.New("lone webhook still queued after a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		applied = append(applied, time.Since(start))
		if at := timed.wroteAt(); at.After(start) {
			written = append(written, at.Sub(start))
		}
	}
	slices.Sort(applied)
	slices.Sort(written)
	return applied, written, loneSync, nil
}

// limitSummary is the limit's mean, range and last sample.
func limitSummary(l []int) string {
	if len(l) == 0 {
		return "–"
	}
	sum := 0
	for _, v := range l {
		sum += v
	}
	return fmt.Sprintf("mean %.1f, %d–%d, last %d (%d samples)", float64(sum)/float64(len(l)), slices.Min(l), slices.Max(l), l[len(l)-1], len(l))
}

func hlCount(fake *highleveltest.Server) int {
	if fake == nil {
		return 0
	}
	return len(fake.Requests())
}

// contactRound is contact n as HighLevel holds it after round r.
func contactRound(g *webhooks, n, r int) highlevel.Contact {
	return highlevel.Contact{ID: g.contactID(n), FirstName: firstName(n, r), LastName: "Lee", Email: g.email(n),
		Tags: contactTags(n, r)}
}

// verifyUsers checks that every contact has exactly one user, with the
// first name and tags of the storm's last round (an update).
func verifyUsers(ctx context.Context, wp *wordpress.Client, g *webhooks, o drainOpts, fake *highleveltest.Server) (checked, wrong int) {
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for n := range next {
				id := g.contactID(n)
				wantName, wantTags := firstName(n, o.perContact-1), contactTags(n, o.perContact-1)
				if fake != nil {
					if c, ok := fake.Contact(id); ok {
						wantName, wantTags = c.FirstName, c.Tags
					}
				}
				problem := ""
				ids, err := wp.UsersByMeta(ctx, "highlevel_contact_id", id)
				switch {
				case err != nil:
					problem = err.Error()
				case len(ids) != 1:
					problem = fmt.Sprintf("%d users", len(ids))
				default:
					u, err := wp.UserByID(ctx, ids[0])
					if err != nil {
						problem = err.Error()
						break
					}
					meta, err := wp.Meta(ctx, ids[0], "highlevel_tags")
					if err != nil {
						problem = err.Error()
						break
					}
					tags := fmt.Sprint(meta["highlevel_tags"])
					if u.FirstName != wantName || !strings.EqualFold(tags, fmt.Sprint(wantTags)) {
						problem = fmt.Sprintf("user %d has first name %q and tags %s, want %q and %v", u.ID, u.FirstName, tags, wantName, wantTags)
					}
				}
				mu.Lock()
				checked++
				if problem != "" {
					wrong++
					if wrong <= 5 {
						progress("contact %s: %s", id, problem)
					}
				}
				mu.Unlock()
			}
		})
	}
	for n := range o.contacts {
		next <- n
	}
	close(next)
	wg.Wait()
	return checked, wrong
}

// phpLine matches the PHP built-in server's log line of an answered request.
var phpLine = regexp.MustCompile(`\[(\d{3})\]: ([A-Z]+) `)

// countPHPLog counts the requests php.log records after offset, by method.
func countPHPLog(path string, offset int64) map[string]int {
	counts := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return counts
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := phpLine.FindStringSubmatch(sc.Text()); m != nil {
			counts[m[2]]++
			counts["all"]++
		}
	}
	return counts
}

// sampler GETs a page at a fixed interval (open loop: a slow answer does
// not delay the next request) and keeps the response times.
type sampler struct {
	mu       sync.Mutex
	times    []time.Duration
	errs     int
	statuses map[int]int
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func startSampler(u string, every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{}), statuses: map[int]int{}}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
			}
			s.wg.Go(func() {
				t0 := time.Now()
				resp, err := c.Get(u)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				d := time.Since(t0)
				s.mu.Lock()
				defer s.mu.Unlock()
				if err != nil {
					s.errs++
					return
				}
				s.statuses[resp.StatusCode]++
				if resp.StatusCode >= 400 {
					s.errs++
				}
				s.times = append(s.times, d)
			})
		}
	})
	return s
}

// cut returns the response times so far, sorted, with the errors and a
// summary of the statuses, and starts a new series.
func (s *sampler) cut() ([]time.Duration, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, errs := s.times, s.errs
	slices.Sort(t)
	var parts []string
	for code, n := range s.statuses {
		parts = append(parts, fmt.Sprintf("%d×%d", n, code))
	}
	slices.Sort(parts)
	s.times, s.errs, s.statuses = nil, 0, map[int]int{}
	return t, errs, strings.Join(parts, ", ")
}

func (s *sampler) stop() {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
}

func pctOf(t []time.Duration, p float64) time.Duration {
	if len(t) == 0 {
		return 0
	}
	return t[min(len(t)-1, int(p*float64(len(t))))]
}

func printDrain(w io.Writer, head string, o drainOpts, rs []*drainResult) {
	fmt.Fprintf(w, "### Storm drain\n\nMachine: %s.\n\n", head)
	store := "SQLite (a file in " + os.TempDir() + ")"
	if o.store == "postgres" {
		store = "PostgreSQL (" + postgresSettings(context.Background(), o.pgURL) + ")"
	}
	fmt.Fprintf(w, "%d webhooks for %d contacts: %d rounds, each a bulk edit of every contact (add first, then update_tags and update alternating, the last an update), "+
		"sent by %d concurrent clients to the bridge wired as cmd/hlbridge serves it (store: %s; %d workers, "+
		"BRIDGE_WORDPRESS_CONCURRENCY=%d as the bound of the adaptive limit, BRIDGE_SETTLE_WINDOW=%s, HIGHLEVEL_REQUESTS_PER_10S=90), against the test WordPress "+
		"(testdata/wordpress: PHP's built-in server with 4 workers, MariaDB) on the same machine. "+
		"Token mode loads each contact from the in-process fake HighLevel (highleveltest, its burst limit of 100 per 10 s on); "+
		"payload mode takes it from the webhook body and calls no HighLevel. The page is `GET %s` every %s "+
		"(the test site has no theme, so it is WordPress's bootstrap and main query with an empty body), idle for %s before the storm, "+
		"then from the first webhook until the queue is empty. Times to accept and to drain count from the first webhook.\n\n",
		o.contacts*o.perContact, o.contacts, o.perContact, o.clients, store, o.wpConcurrency, o.wpConcurrency, o.settle,
		o.page, o.sampleEvery, o.idle)
	header := []string{"measure"}
	for _, r := range rs {
		if r.mode == "token" {
			header = append(header, "token mode (fake HighLevel)")
		} else {
			header = append(header, "payload mode (no HighLevel)")
		}
	}
	row := func(name string, f func(r *drainResult) string) []string {
		out := []string{name}
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	ratio := func(a, b time.Duration) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", float64(a)/float64(b))
	}
	rows := [][]string{
		row("webhooks accepted (202)", func(r *drainResult) string {
			return fmt.Sprintf("%d of %d (%s)", r.accept.ok, r.webhooks, notAccepted(r.accept))
		}),
		row("time to accept all", func(r *drainResult) string {
			return fmt.Sprintf("%s (%.0f/s; ack p50 %s ms, p99 %s ms)", r.acceptedIn.Round(time.Millisecond),
				float64(r.accept.ok)/r.acceptedIn.Seconds(), ms(r.accept.pct(.5)), ms(r.accept.pct(.99)))
		}),
		row("time to drain", func(r *drainResult) string {
			return fmt.Sprintf("%s (%.1f contacts/s)", r.drainedIn.Round(100*time.Millisecond), float64(o.contacts)/r.drainedIn.Seconds())
		}),
		row("WordPress writes by the bridge", func(r *drainResult) string {
			return fmt.Sprintf("**%d** for %d contacts (%+.1f%%): %d creates, %d updates, %d meta, %d notifications",
				r.writes, o.contacts, 100*(float64(r.writes)-float64(o.contacts))/float64(o.contacts), r.creates, r.updates, r.metas, r.nots)
		}),
		row("WordPress reads by the bridge", func(r *drainResult) string { return strconv.FormatInt(r.reads, 10) }),
		row("requests in php.log (storm and samples)", func(r *drainResult) string {
			return fmt.Sprintf("%d (POST %d, PUT %d, GET %d)", r.php["all"], r.php["POST"], r.php["PUT"], r.php["GET"])
		}),
		row("HighLevel calls", func(r *drainResult) string {
			if r.mode != "token" {
				return "0 (none made)"
			}
			return fmt.Sprintf("%d (%d answered 429, %d other errors)", r.hlCalls, r.hl429, r.hlOther)
		}),
		row("events done / refused / failed / queued", func(r *drainResult) string {
			return fmt.Sprintf("%d / %d / %d / %d", r.events[bridge.StatusDone], r.events[bridge.StatusRefused],
				r.events[bridge.StatusFailed], r.events[bridge.StatusQueued])
		}),
		row("users checked after the drain", func(r *drainResult) string {
			if r.checked == 0 {
				return "not checked"
			}
			return fmt.Sprintf("%d: %d with one user, its final first name and tags; %d wrong", r.checked, r.checked-r.wrong, r.wrong)
		}),
		row("page idle p50 / p95", func(r *drainResult) string {
			return fmt.Sprintf("%s / %s ms (%d samples)", ms(pctOf(r.idle, .5)), ms(pctOf(r.idle, .95)), len(r.idle))
		}),
		row("page during storm p50 / p95", func(r *drainResult) string {
			return fmt.Sprintf("%s / %s ms (%d samples; %s)", ms(pctOf(r.storm, .5)), ms(pctOf(r.storm, .95)), len(r.storm), r.pageStatus)
		}),
		row("page p50 storm ÷ idle", func(r *drainResult) string {
			return "**" + ratio(pctOf(r.storm, .5), pctOf(r.idle, .5)) + "** (p95 " + ratio(pctOf(r.storm, .95), pctOf(r.idle, .95)) + ")"
		}),
		row("page p50 / p95 after the last webhook was accepted, ÷ idle", func(r *drainResult) string {
			return fmt.Sprintf("%s / %s (%d samples)", ratio(pctOf(r.drainOnly, .5), pctOf(r.idle, .5)), ratio(pctOf(r.drainOnly, .95), pctOf(r.idle, .95)), len(r.drainOnly))
		}),
		row("WordPress concurrency limit during the storm", func(r *drainResult) string {
			if o.fixed {
				return fmt.Sprintf("fixed at %d", o.wpConcurrency)
			}
			return limitSummary(r.limits)
		}),
		row("the bridge's user creates / updates / lookups p50 / p95", func(r *drainResult) string {
			return fmt.Sprintf("%s / %s ms; %s / %s ms; %s / %s ms", ms(pctOf(r.createTimes, .5)), ms(pctOf(r.createTimes, .95)),
				ms(pctOf(r.updateTimes, .5)), ms(pctOf(r.updateTimes, .95)),
				ms(pctOf(r.lookupTimes, .5)), ms(pctOf(r.lookupTimes, .95)))
		}),
		row(fmt.Sprintf("%d lone webhooks after the drain: user created / applied in, median (min–max)", loneRuns), func(r *drainResult) string {
			span := func(t []time.Duration) string {
				if len(t) == 0 {
					return "–"
				}
				return fmt.Sprintf("%s (%s–%s)", ms(pctOf(t, .5)), ms(t[0]), ms(t[len(t)-1]))
			}
			return fmt.Sprintf("%s / %s ms (settle window %s; sync=true: answered in %s ms)", span(r.loneWrite), span(r.lone), o.settle, ms(r.loneSync))
		}),
	}
	table(w, header, rows)
	fmt.Fprintf(w, "\nLoad average at the end: %s.\n", loadAverage())
}
