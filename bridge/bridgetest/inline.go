// Package bridgetest provides stand-ins for testing code built on package
// bridge, the way net/http/httptest does for net/http: a Dispatcher that
// applies requests at once, and a Users wrapper that counts the calls made
// to WordPress. The product never uses it; tests and cmd/hlbench do.
package bridgetest

import (
	"context"

	"github.com/hlbridge/hlbridge/bridge"
)

// Inline is a Dispatcher for the tests: it applies each request at once,
// inside the HTTP request, and keeps nothing, so the end-to-end tests see
// a sync's result in the answer. The product always runs on the queue.
type Inline struct{ Syncer *bridge.Syncer }

// Dispatch applies req and reports the outcome.
func (in Inline) Dispatch(ctx context.Context, req bridge.Request, _ bridge.Delivery) (bridge.Outcome, error) {
	res, err := in.Syncer.Apply(ctx, req)
	return bridge.Outcome{Done: true, Result: res, Err: err}, nil
}
