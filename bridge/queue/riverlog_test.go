package queue

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// River's Info records reach the log as Debug, and not at all at the Info
// level; Warn and Error keep theirs; attributes and groups pass through.
func TestQuietHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level slog.Level
		want  []string // lines, by their level and message
		gone  []string
	}{
		{slog.LevelInfo, []string{`"level":"WARN","msg":"elector: warn"`, `"level":"ERROR","msg":"producer: failed"`},
			[]string{"Producer job counts", "debug detail"}},
		{slog.LevelDebug, []string{`"level":"DEBUG","msg":"producer: Producer job counts"`, `"level":"DEBUG","msg":"debug detail"`,
			`"level":"WARN","msg":"elector: warn"`, `"level":"ERROR","msg":"producer: failed"`}, nil},
	} {
		var buf bytes.Buffer
		base := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level})
		log := slog.New(quietHandler{base}).With(slog.String("component", "river")).WithGroup("g")
		log.Info("producer: Producer job counts", slog.Int("num_jobs_running", 0))
		log.Debug("debug detail")
		log.Log(context.Background(), slog.LevelInfo+2, "producer: Producer job counts")
		log.Warn("elector: warn")
		log.Error("producer: failed")
		out := buf.String()
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("at %s: no %s in\n%s", tc.level, w, out)
			}
		}
		for _, g := range tc.gone {
			if strings.Contains(out, g) {
				t.Errorf("at %s: %q logged:\n%s", tc.level, g, out)
			}
		}
		if strings.Contains(out, `"level":"INFO"`) {
			t.Errorf("at %s: an INFO line from River:\n%s", tc.level, out)
		}
		if tc.level == slog.LevelDebug && !strings.Contains(out, `"component":"river","g":{"num_jobs_running":0}`) {
			t.Errorf("attributes or group lost:\n%s", out)
		}
	}
}
