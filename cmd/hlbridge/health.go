package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds "hlbridge health"; /readyz bounds its own checks to
// 5 s, and Docker's HEALTHCHECK gives a probe 30 s by default.
const healthTimeout = 10 * time.Second

// runHealth is "hlbridge health": it asks the bridge running on this host
// (the port of BRIDGE_ADDR, default :8080) for /readyz, prints the answer,
// and fails unless the answer is 200. It needs no shell or curl, so the
// distroless image can use it as its HEALTHCHECK.
func runHealth(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("health takes no arguments\n%s", usage)
	}
	url, err := readyzURL(getenv("BRIDGE_ADDR"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: the bridge did not answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return errors.New("health: not ready (" + resp.Status + ")")
	}
	return nil
}

// readyzURL is /readyz on the loopback address of the port in addr
// (BRIDGE_ADDR): a bridge listening on every address, or on a named one
// such as 127.0.0.1, is asked there; one bound to another host's address
// is asked at that address.
func readyzURL(addr string) (string, error) {
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("BRIDGE_ADDR %q: want host:port or :port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
