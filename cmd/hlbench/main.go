// Command hlbench measures hlbridge on the machine it runs on and prints
// Markdown tables for the README: the HTTP intake (webhooks durably
// accepted per second, ack latency), a storm of webhooks drained into a
// real WordPress, and the bridge's memory with queued events.
//
//	hlbench intake [--clients 16,64] [--duration 10s] [--rate 1000] [--rate-duration 10s]
//	               [--targets noop,sqlite,postgres] [--postgres URL] [--payload] [--cpuprofile FILE]
//	               [--outside [--site DIR] [--hlbridge BIN]]
//	hlbench drain  [--site DIR] [--contacts 1000] [--per-contact 10] [--modes token,payload]
//	               [--postgres URL] [--idle 10s] [--timeout 15m]
//	hlbench memory [--events 10000] [--contacts 1000] [--postgres URL]
//
// Everything runs on loopback. --postgres names a PostgreSQL server (for
// example postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable): a
// throw-away database is created on it for each measurement and dropped
// after. drain starts a test WordPress with testdata/wordpress/start.sh
// (and stops it) unless --site names the directory of a running one.
// Progress goes to stderr, the tables to stdout.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  hlbench intake [flags]   webhooks accepted per second and ack latency (no-op gin, SQLite, PostgreSQL)
  hlbench drain [flags]    a storm of webhooks drained into a real WordPress
  hlbench memory [flags]   the bridge's memory with queued webhooks, workers stopped
Run "hlbench COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "intake":
		err = runIntake(ctx, args)
	case "drain":
		err = runDrain(ctx, args)
	case "memory":
		err = runMemory(ctx, args)
	case "noop-server": // hidden: the no-op target of intake --outside
		err = runNoopServer(ctx, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "hlbench: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hlbench:", err)
		os.Exit(1)
	}
}
