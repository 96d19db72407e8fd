package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/queue"
)

// runEvents is "hlbridge events list|retry": the operator's view of the
// queue, straight on BRIDGE_DATABASE (the bridge may be running).
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("events: want list or retry\n" + usage)
	}
	dsn := getenv("BRIDGE_DATABASE")
	if dsn == "" {
		dsn = "hlbridge.db"
	}
	open := func() (*queue.Queue, func(), error) {
		store, err := queue.OpenStore(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		q, err := queue.New(store, nil, queue.Config{})
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		return q, func() { store.Close() }, nil
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("events list", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		failed := fs.Bool("failed", false, "only failed and refused events")
		limit := fs.Int("limit", 50, "how many, newest first")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("events list: %w\n%s", err, usage)
		}
		if *limit < 1 || *limit > 10000 {
			return errors.New("events list: --limit must be from 1 to 10000")
		}
		q, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		evs, err := q.Events(ctx, bridge.EventFilter{Failed: *failed, Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if evs == nil {
				evs = []bridge.Event{}
			}
			return enc.Encode(evs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tCONTACT\tACTION\tSTATUS\tATTEMPTS\tUSER\tERROR")
		for _, e := range evs {
			user := ""
			if e.Result != nil && e.Result.UserID != 0 {
				user = strconv.FormatInt(e.Result.UserID, 10)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.ReceivedAt.Format(time.RFC3339), e.ContactID,
				e.Action, e.Status, e.Attempts, user, oneLine(e.Error))
		}
		return tw.Flush()
	case "retry":
		fs := flag.NewFlagSet("events retry", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		failed := fs.Bool("failed", false, "retry every failed and refused event")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("events retry: %w\n%s", err, usage)
		}
		if *failed == (fs.NArg() > 0) {
			return errors.New("events retry: give event ids or --failed, not both\n" + usage)
		}
		var ids []int64
		for _, a := range fs.Args() {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil || id < 1 {
				return fmt.Errorf("events retry: %q is not an event id", a)
			}
			ids = append(ids, id)
		}
		q, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		if *failed {
			ids, err = q.RetryFailed(ctx)
			fmt.Fprintf(stdout, "queued %d events again\n", len(ids))
			return err
		}
		for _, id := range ids {
			if err := q.Retry(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "queued event %d again\n", id)
		}
		return nil
	}
	return fmt.Errorf("events: unknown command %q\n%s", args[0], usage)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
