package bridge

import (
	"context"
)

// Outcome is what became of a webhook handed to a Dispatcher.
type Outcome struct {
	// Done: the request was carried out (Result and Err say how); false
	// means it was accepted and will be carried out later.
	Done   bool
	Result Result
	Err    error
	// EventID identifies the stored event, 0 when nothing was stored.
	EventID int64
	// Duplicate: an app event with this webhookId was received before;
	// nothing new was queued. Workflow webhooks are never duplicates.
	Duplicate bool
}

// Dispatcher takes a webhook's request from the HTTP intake. It returns an
// error only when it could not take the request at all (its store is
// down); how the request itself fared is in the Outcome.
type Dispatcher interface {
	Dispatch(ctx context.Context, req Request, d Delivery) (Outcome, error)
}

// Delivery describes how a request arrived, for deduplication and for
// waiting on its result.
type Delivery struct {
	// WebhookID is the webhookId of a HighLevel app event, which HighLevel's
	// retries of that event share; a repeat is a duplicate. Empty for
	// workflow webhooks: they carry no delivery id, and a retry looks
	// exactly like a new run that may carry news, so they are never
	// deduplicated (only coalesced into a sync that has not started).
	WebhookID string
	// Wait asks the dispatcher to wait, up to its own bound, for the outcome.
	Wait bool
}
