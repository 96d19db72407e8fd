package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
)

const importUsage = `usage: hlbridge import [--tag TAG] [--since YYYY-MM-DD] [--action update|add|update_tags] [--dry-run] [--page-size N] [--restart]

Brings the location's existing HighLevel contacts over once: all of them, those
with a tag (--tag), or those changed since a date (--since, on dateUpdated). It
pages through HighLevel's contact search within HIGHLEVEL_REQUESTS_PER_10S and
queues one sync per contact in BRIDGE_DATABASE; the running bridge server does
the syncs, at its own pace, coalescing them with webhooks as usual.

  --action update       update users that exist (the default); contacts without
                        a user are refused, and listed by "events list --failed"
  --action add          also create a user for every contact without one. Ask for
                        it only if every contact found should get a user: as WP
                        Fusion warns about global adds, it may create thousands.
  --dry-run             count the users that would be created, updated or left
                        alone, and the contacts that would be skipped; reads
                        WordPress and HighLevel, writes and queues nothing
  --page-size N         contacts per search request, 1 to 500 (default 500)
  --restart             forget the saved progress of this query and start over

Interrupted (Ctrl-C, a crash), the same command resumes where it stopped: the
search cursor and the counts are kept in a small JSON file beside the store,
BRIDGE_DATABASE.import-KEY.json for SQLite (hlbridge-import-KEY.json in the
working directory for PostgreSQL), where KEY stands for the location, tag, date
and action. The file is removed when the import completes. Payload mode (no
HIGHLEVEL_TOKEN) cannot import: it needs HighLevel's API.
`

// importQuery is what an import brings over; its key names its progress file.
type importQuery struct {
	Location string        `json:"location"`
	Tag      string        `json:"tag,omitempty"`
	Since    string        `json:"since,omitempty"`
	Action   bridge.Action `json:"action"`
}

func (q importQuery) key() string {
	b, _ := json.Marshal(q)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

func (q importQuery) filters() []highlevel.SearchFilter {
	var fs []highlevel.SearchFilter
	if q.Tag != "" {
		fs = append(fs, highlevel.SearchFilter{Field: "tags", Operator: "eq", Value: q.Tag})
	}
	if q.Since != "" {
		fs = append(fs, highlevel.SearchFilter{Field: "dateUpdated", Operator: "range", Value: map[string]string{"gte": q.Since}})
	}
	return fs
}

// importState is an import's progress, saved so that it can resume.
type importState struct {
	Query       importQuery `json:"query"`
	SearchAfter []any       `json:"search_after,omitempty"` // after the last contact queued
	Queued      int         `json:"queued"`
	Total       int         `json:"total"`
	StartedAt   time.Time   `json:"started_at"`
	SavedAt     time.Time   `json:"saved_at"`
}

// statePath is where an import's progress is kept: beside a SQLite store,
// in the working directory for PostgreSQL.
func statePath(dsn string, q importQuery) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return "hlbridge-import-" + q.key() + ".json"
	}
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "sqlite:")
	return path + ".import-" + q.key() + ".json"
}

func loadState(path string) (*importState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st importState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("import progress %s is damaged (%v): run with --restart", path, err)
	}
	return &st, nil
}

// save writes the state atomically: a crash leaves the old or the new one.
func (st *importState) save(path string) error {
	st.SavedAt = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save import progress: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save import progress: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save import progress: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save import progress: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save import progress: %w", err)
	}
	return nil
}

// runImport is "hlbridge import": see importUsage.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tag := fs.String("tag", "", "only contacts with this tag")
	since := fs.String("since", "", "only contacts changed since this date (YYYY-MM-DD, UTC, or RFC 3339)")
	actionName := fs.String("action", string(bridge.ActionUpdate), "update, add or update_tags")
	dryRun := fs.Bool("dry-run", false, "count what would happen; write and queue nothing")
	pageSize := fs.Int("page-size", highlevel.MaxSearchPageLimit, "contacts per search request")
	restart := fs.Bool("restart", false, "forget saved progress")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, importUsage)
			return nil
		}
		return fmt.Errorf("import: %w\n%s", err, importUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("import: unexpected argument %q\n%s", fs.Arg(0), importUsage)
	}
	action, ok := bridge.ParseAction(*actionName)
	if !ok || action == bridge.ActionTest {
		return fmt.Errorf("import: --action %q: want update, add or update_tags", *actionName)
	}
	if *pageSize < 1 || *pageSize > highlevel.MaxSearchPageLimit {
		return fmt.Errorf("import: --page-size must be from 1 to %d", highlevel.MaxSearchPageLimit)
	}
	q := importQuery{Tag: strings.ToLower(strings.TrimSpace(*tag)), Action: action}
	if *since != "" {
		t, err := time.Parse("2006-01-02", *since)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, *since); err != nil {
				return fmt.Errorf("import: --since %q: want a date such as 2026-01-02", *since)
			}
		}
		q.Since = t.UTC().Format(time.RFC3339)
	}
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		return err
	}
	if cfg.HighLevelToken == "" {
		return errors.New("import: needs HIGHLEVEL_TOKEN: it reads the contacts from HighLevel's API, which payload mode does not use")
	}
	if cfg.HighLevelLocationID == "" {
		return errors.New("import: needs HIGHLEVEL_LOCATION_ID: the search runs over one location's contacts")
	}
	q.Location = cfg.HighLevelLocationID
	logger := commandLogger(cfg, stderr)
	d, err := newDoors(cfg, logger)
	if err != nil {
		return err
	}
	im := &importer{hl: d.hl, query: q, pageSize: *pageSize, progress: newProgress(stdout, stderr)}
	if *dryRun {
		verifyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = d.wp.Verify(verifyCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("check WordPress at %s: %w (run hlbridge check)", cfg.WordPressURL, err)
		}
		syncer, err := newSyncer(ctx, cfg, d.wp, d, logger)
		if err != nil {
			return err
		}
		if err := im.dryRun(ctx, syncer, cfg.WordPressConcurrency, stdout); err != nil {
			im.progress.end()
			return err
		}
		return nil
	}

	path := statePath(cfg.Database, q)
	st, err := loadState(path)
	if err != nil {
		return err
	}
	if st != nil && *restart {
		st = nil
	}
	if st == nil {
		st = &importState{Query: q, StartedAt: time.Now().UTC()}
	} else {
		fmt.Fprintf(stdout, "resuming the import started %s: %d contacts queued so far (progress in %s)\n",
			st.StartedAt.Local().Format(time.DateTime), st.Queued, path)
	}
	store, err := queue.OpenStore(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer store.Close()
	queue, err := queue.New(store, nil, queue.Config{})
	if err != nil {
		return err
	}
	err = im.run(ctx, queue, st, path)
	if err != nil {
		im.progress.end()
	}
	switch {
	case err == nil:
		os.Remove(path)
		fmt.Fprintf(stdout, "import done: %d contacts queued for %s; the bridge server applies them (see hlbridge events list)\n", st.Queued, q.Action)
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("import interrupted after %d of %d contacts; run the same command again to resume (progress in %s)", st.Queued, st.Total, path)
	}
	return fmt.Errorf("import stopped after %d of %d contacts: %w; run the same command again to resume (progress in %s)", st.Queued, st.Total, err, path)
}

// importer pages through one query's contacts.
type importer struct {
	hl       *highlevel.Client
	query    importQuery
	pageSize int
	progress *progress
}

// page fetches one page, waiting out a rate limit or a short outage a few
// times: other integrations share the location's budget.
func (im *importer) page(ctx context.Context, after []any) (*highlevel.ContactPage, error) {
	var err error
	for try := range 6 {
		var page *highlevel.ContactPage
		page, err = im.hl.SearchContacts(ctx, highlevel.ContactSearch{Filters: im.query.filters(), PageLimit: im.pageSize, SearchAfter: after})
		if err == nil || !highlevel.Retryable(err) {
			return page, err
		}
		wait, ok := highlevel.RetryAfter(err)
		if !ok {
			wait = time.Duration(1<<try) * time.Second
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, err
}

// run queues every contact after st's cursor, saving the cursor as it goes.
func (im *importer) run(ctx context.Context, queue *queue.Queue, st *importState, path string) error {
	im.progress.begin(st.Queued)
	lastSave := time.Now()
	for {
		page, err := im.page(ctx, st.SearchAfter)
		if err != nil {
			if serr := st.save(path); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
		st.Total = max(page.Total, st.Queued+len(page.Contacts))
		for i, c := range page.Contacts {
			if ctx.Err() != nil {
				return errors.Join(ctx.Err(), st.save(path))
			}
			// Not ctx: a dispatch under way is finished, so the count and
			// the cursor stay exact.
			if _, err := queue.Dispatch(context.WithoutCancel(ctx), bridge.Request{Action: im.query.Action, ContactID: c.ID}, bridge.Delivery{}); err != nil {
				return errors.Join(fmt.Errorf("queue contact %s: %w", c.ID, err), st.save(path))
			}
			st.Queued++
			st.SearchAfter = page.After[i]
			if time.Since(lastSave) > time.Second {
				if err := st.save(path); err != nil {
					return err
				}
				lastSave = time.Now()
			}
			im.progress.update(st.Queued, st.Total, "queued")
		}
		if err := st.save(path); err != nil {
			return err
		}
		lastSave = time.Now()
		im.progress.page(st.Queued, st.Total, "queued")
		if page.Next == nil {
			im.progress.end()
			return nil
		}
	}
}

// planCounts are what a dry run found.
type planCounts struct {
	mu                                  sync.Mutex
	created, updated, unchanged, failed int
	skipped                             map[string]int // refusal reason -> contacts
}

// dryRun plans every contact of the query with the rules' Plan, as many at
// once as the server syncs, and prints the counts. It queues nothing and
// saves no progress.
func (im *importer) dryRun(ctx context.Context, syncer *bridge.Syncer, concurrency int, stdout io.Writer) error {
	counts := &planCounts{skipped: map[string]int{}}
	seen := 0
	var after []any
	var firstErr error
	im.progress.begin(0)
	for {
		page, err := im.page(ctx, after)
		if err != nil {
			return err
		}
		total := max(page.Total, seen+len(page.Contacts))
		sem := make(chan struct{}, max(1, concurrency))
		var wg sync.WaitGroup
		var done sync.Mutex
		for _, c := range page.Contacts {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res, err := syncer.PlanContact(ctx, bridge.Request{Action: im.query.Action}, c)
				counts.mu.Lock()
				var refused *bridge.RefusedError
				switch {
				case errors.As(err, &refused):
					counts.skipped[skipReason(refused.Reason)]++
				case err != nil:
					counts.failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("contact %s: %w", c.ID, err)
					}
				case res.Created:
					counts.created++
				case len(res.Changed) > 0:
					counts.updated++
				default:
					counts.unchanged++
				}
				counts.mu.Unlock()
				done.Lock()
				seen++
				im.progress.update(seen, total, "planned")
				done.Unlock()
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		im.progress.page(seen, total, "planned")
		if page.Next == nil {
			break
		}
		after = page.Next
	}
	im.progress.end()
	im.progress.tty = false // ended: the summary follows on its own line
	skipped := 0
	for _, n := range counts.skipped {
		skipped += n
	}
	fmt.Fprintf(stdout, "dry run (%s) of %d contacts: %d users would be created, %d updated, %d left as they are; %d contacts skipped\n",
		im.query.Action, seen, counts.created, counts.updated, counts.unchanged, skipped)
	for reason, n := range counts.skipped {
		fmt.Fprintf(stdout, "  skipped %d: %s\n", n, reason)
	}
	if counts.failed > 0 {
		return fmt.Errorf("dry run: %d contacts could not be planned, e.g. %w", counts.failed, firstErr)
	}
	return nil
}

// skipReason groups refusals: the ids in a reason differ per contact.
func skipReason(reason string) string {
	switch {
	case strings.HasPrefix(reason, "no WordPress user is linked"):
		return "no WordPress user (use --action add to create them)"
	case strings.Contains(reason, "is an administrator"):
		return "the user is an administrator, never changed"
	case strings.Contains(reason, "has no email"):
		return "no email, which WordPress needs for a new user"
	case strings.Contains(reason, "but is linked to contact"):
		return "the email's user is linked to another contact"
	}
	return reason
}

// progress shows how far a long command is: a redrawn bar with counts and
// an estimate when stderr is a terminal, else a plain line per page on
// stdout.
type progress struct {
	out      io.Writer
	tty      bool
	start    time.Time
	from     int
	lastDraw time.Time
}

func newProgress(stdout, stderr io.Writer) *progress {
	if isTerminal(stderr) {
		return &progress{out: stderr, tty: true}
	}
	return &progress{out: stdout}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) begin(done int) { p.start, p.from = time.Now(), done }

// estimate is the rate so far and the time left at that rate.
func (p *progress) estimate(done, total int) string {
	elapsed := time.Since(p.start)
	n := done - p.from
	if n <= 0 || elapsed <= 0 {
		return ""
	}
	rate := float64(n) / elapsed.Seconds()
	left := time.Duration(float64(max(0, total-done)) / rate * float64(time.Second))
	return fmt.Sprintf(", %.0f/s, about %s left", rate, left.Round(time.Second))
}

func percent(done, total int) int {
	if total <= 0 {
		return 100
	}
	return min(100, done*100/total)
}

// update redraws the bar, at most ten times a second.
func (p *progress) update(done, total int, verb string) {
	if !p.tty || time.Since(p.lastDraw) < 100*time.Millisecond && done < total {
		return
	}
	p.lastDraw = time.Now()
	const width = 30
	filled := percent(done, total) * width / 100
	fmt.Fprintf(p.out, "\r\033[K[%s%s] %d/%d %s (%d%%)%s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		done, total, verb, percent(done, total), p.estimate(done, total))
}

// page prints a plain progress line (not on a terminal, where the bar shows it).
func (p *progress) page(done, total int, verb string) {
	if p.tty {
		return
	}
	fmt.Fprintf(p.out, "%s %d of %d contacts (%d%%)%s\n", verb, done, total, percent(done, total), p.estimate(done, total))
}

func (p *progress) end() {
	if p.tty {
		fmt.Fprintln(p.out)
	}
}
