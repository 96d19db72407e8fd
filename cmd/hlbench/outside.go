package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The intake measured from outside (hlbench intake --outside): each target
// is a process of its own, so the load generator's CPU is not the
// server's and a server's CPU is read from /proc. The bridge is
// cmd/hlbridge serve, configured by its environment as an operator would,
// in payload mode, its queue workers syncing into a live test WordPress
// while the intake is measured; the no-op gin handler is hlbench
// noop-server.

// outside starts the targets of one outside run.
type outside struct {
	site     *site
	hlbench  string // this program, for noop-server
	hlbridge string // cmd/hlbridge, built for the run
	dir      string // temp dir of the binaries, stores and logs
	n        int    // targets started, for their file names
}

// newOutside returns what starts the targets of a run against s, with the
// hlbridge binary given, or else cmd/hlbridge built into a temp dir.
func newOutside(ctx context.Context, s *site, binary string) (*outside, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hlbench-outside-")
	if err != nil {
		return nil, err
	}
	o := &outside{site: s, hlbench: self, hlbridge: binary, dir: dir}
	if binary != "" {
		return o, nil
	}
	root, err := repoRoot()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	o.hlbridge = filepath.Join(dir, "hlbridge")
	progress("building cmd/hlbridge")
	build := exec.CommandContext(ctx, "go", "build", "-o", o.hlbridge, "./cmd/hlbridge")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build cmd/hlbridge: %w", err)
	}
	return o, nil
}

// close removes the run's temp dir.
func (o *outside) close() { os.RemoveAll(o.dir) }

// start starts target name ("noop", "sqlite" or "postgres") as a process
// of its own and waits until it answers.
func (o *outside) start(ctx context.Context, name, pgURL string) (*target, error) {
	o.n++
	log, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("%d-%s.log", o.n, name)))
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	if name == "noop" {
		cmd := exec.Command(o.hlbench, "noop-server")
		cmd.Stderr = log
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			stopProcess(cmd, 5*time.Second)
			return nil, fmt.Errorf("noop-server did not say where it listens: %w", err)
		}
		return &target{base: strings.TrimSpace(line), key: "unused", cpu: processCPU(cmd.Process.Pid),
			stop: func() { stopProcess(cmd, 5*time.Second) }}, nil
	}
	dsn, removeStore, err := storeDSN(ctx, name, pgURL)
	if err != nil {
		return nil, err
	}
	if name == "sqlite" { // a store beside the logs, not a temp dir of its own
		removeStore()
		dsn, removeStore = filepath.Join(o.dir, fmt.Sprintf("%d-hlbridge.db", o.n)), func() {}
	}
	addr, err := freeAddr()
	if err != nil {
		removeStore()
		return nil, err
	}
	key := "key-" + randomHex(12)
	cmd := exec.Command(o.hlbridge, "serve")
	// Payload mode (no HIGHLEVEL_TOKEN); everything else at its default,
	// logging included.
	cmd.Env = append(os.Environ(),
		"WORDPRESS_URL="+o.site.url, "WORDPRESS_USERNAME="+o.site.username, "WORDPRESS_APP_PASSWORD="+o.site.appPassword,
		"HIGHLEVEL_TOKEN=", "BRIDGE_ACCESS_KEY="+key, "BRIDGE_ADDR="+addr, "BRIDGE_DATABASE="+dsn,
		"BRIDGE_SHUTDOWN_TIMEOUT=5s")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		removeStore()
		return nil, err
	}
	stop := func() { stopProcess(cmd, 15*time.Second); removeStore() }
	base := "http://" + addr
	if err := waitReady(ctx, base+"/readyz", 60*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("hlbridge (log: %s): %w", log.Name(), err)
	}
	return &target{base: base, key: key, dsn: dsn, cpu: processCPU(cmd.Process.Pid), stop: stop}, nil
}

// freeAddr is a loopback address with a port free just now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls u until it answers 200.
func waitReady(ctx context.Context, u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %s", u, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopProcess sends SIGTERM and waits, killing the process after grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat's times: 100
// on every architecture Go supports.
const clockTicks = 100

// processCPU returns a func reading the CPU time (user and system) that
// process pid has used, from /proc/PID/stat; 0 when it cannot be read.
func processCPU(pid int) func() time.Duration {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	return func() time.Duration {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		// The command name (field 2) may hold spaces; the fields after
		// its closing parenthesis start with the state (field 3), so utime
		// (field 14) and stime (15) are the 12th and 13th of them.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * time.Second / clockTicks
	}
}

// runNoopServer serves the no-op gin handler on a loopback port until
// SIGTERM, and prints its URL on stdout: the no-op target of an outside
// run, in a process of its own like the bridge.
func runNoopServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hlbench noop-server", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := serve(noopHandler())
	if err != nil {
		return err
	}
	fmt.Println(s.URL)
	<-ctx.Done()
	s.Close()
	return nil
}

// repoRoot is the repository's root, found above the working directory.
func repoRoot() (string, error) {
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "testdata", "wordpress", "start.sh")); err == nil {
			return root, nil
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", errors.New("testdata/wordpress/start.sh not found above the working directory; run from the repository")
		}
		root = parent
	}
}
