package queue

import (
	"context"
	"log/slog"
)

// quietHandler is the slog handler River logs through: River's Info
// records (its producer's "Producer job counts" every 5 s, elector and
// notifier chatter) are routine, so they become Debug; Warn and Error stay
// as they are. Lower levels are passed on unchanged.
type quietHandler struct{ next slog.Handler }

// quiet demotes a level from Info up to (not including) Warn to Debug.
func quiet(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, quiet(l))
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = quiet(r.Level)
	return h.next.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.next.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.next.WithGroup(name)}
}
