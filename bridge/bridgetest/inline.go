package bridge

import "context"

// Inline is a Dispatcher for the tests: it applies each request at once,
// inside the HTTP request, and keeps nothing, so the end-to-end tests see
// a sync's result in the answer. The product always runs on the Queue.
type Inline struct{ Syncer *Syncer }

// Dispatch applies req and reports the outcome.
func (in Inline) Dispatch(ctx context.Context, req Request, _ Delivery) (Outcome, error) {
	res, err := in.Syncer.Apply(ctx, req)
	return Outcome{Done: true, Result: res, Err: err}, nil
}
