package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hlbridge/hlbridge/bridge/metrics"
)

func TestWordPressLimitGauge(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	limit := 3
	m.WordPressLimit(func() int { return limit })
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	if text := scrape(); !strings.Contains(text, "\nhlbridge_wordpress_concurrency_limit 3\n") {
		t.Errorf("metrics lack hlbridge_wordpress_concurrency_limit 3:\n%s", text)
	}
	limit = 1 // read when scraped
	if text := scrape(); !strings.Contains(text, "\nhlbridge_wordpress_concurrency_limit 1\n") {
		t.Errorf("the gauge did not follow the limit to 1")
	}
}
