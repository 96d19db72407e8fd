package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// These tests run hlbridge as its users do: the real binary, built once by
// TestMain, in a subprocess with a controlled environment, against the real
// test WordPress and a fake HighLevel running in the test process. Where a
// process must die (kill -9, SIGTERM) nothing else would prove it.

var (
	site   *wordpresstest.Site
	binary string // the hlbridge binary TestMain built
)

// TestMain builds the binary, then runs the tests against the test
// WordPress. It does what wordpresstest.Main does (start or reuse the site,
// run, stop), written out so that the binary's directory is removed
// afterwards: Main ends in os.Exit, which would skip that.
func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hlbridge-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = buildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, stop, err := wordpresstest.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wordpresstest: cannot start the test WordPress: %v\n", err)
		return 1
	}
	defer stop()
	site = s
	return m.Run()
}

// buildBinary builds this package into dir with the go command on PATH.
func buildBinary(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build hlbridge for the tests: no go command on PATH: %w", err)
	}
	bin := filepath.Join(dir, "hlbridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -o %s .: %w\n%s", bin, err, out)
	}
	return bin, nil
}

// proc is one running hlbridge process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	url    string             // http://127.0.0.1:PORT
	logs   *testkit.LogBuffer // its stderr: the JSON log
	exited chan struct{}
	err    error // Wait's answer, once exited is closed
}

// startBinary starts hlbridge serve with exactly env (nothing is inherited
// from the test's environment) plus BRIDGE_ADDR on a free loopback port, and
// waits until it answers /healthz. A port taken meanwhile by another test is
// retried on a new one. The process is killed when the test ends.
func startBinary(t *testing.T, name string, env []string, output func(*testkit.LogBuffer)) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := launch(t, name, env, output)
		err := p.waitHealthy(60 * time.Second)
		if err == nil {
			return p
		}
		if !p.running() && strings.Contains(p.logs.String(), "address already in use") && attempt < 3 {
			continue
		}
		t.Fatalf("%s did not come up: %v\nlog:\n%s", name, err, tail(p.logs.String(), 40))
	}
}

// launch starts hlbridge serve as startBinary does, without waiting.
func launch(t *testing.T, name string, env []string, output func(*testkit.LogBuffer)) *proc {
	t.Helper()
	addr := freeAddr(t)
	p := &proc{name: name, url: "http://" + addr, logs: &testkit.LogBuffer{}, exited: make(chan struct{})}
	output(p.logs)
	p.cmd = exec.Command(binary)
	p.cmd.Env = append(append([]string{}, env...), "BRIDGE_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitHealthy waits until the process answers /healthz with 200.
func (p *proc) waitHealthy(timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if !p.running() {
			return fmt.Errorf("exited: %v", p.err)
		}
		resp, err := client.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy answer within %s (last error: %v)", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill is kill -9: the process gets no chance to clean up.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.exited
}

// terminate sends SIGTERM and returns how the process ended and how long it
// took, failing the test if it is still running after timeout.
func (p *proc) terminate(t *testing.T, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("%s still running %s after SIGTERM; log:\n%s", p.name, timeout, tail(p.logs.String(), 30))
		return 0, nil
	}
}

// cliResult is what one run of an hlbridge command printed.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary with args and exactly env, bounded to 60 s.
func runCLI(t *testing.T, env []string, output func(*testkit.LogBuffer), args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	stdout, stderr := &testkit.LogBuffer{}, &testkit.LogBuffer{}
	output(stdout)
	output(stderr)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
	default:
		t.Fatalf("hlbridge %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("hlbridge %s did not finish within 60 s", strings.Join(args, " "))
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
