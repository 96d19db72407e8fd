package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/bridge/httpapi"
	"github.com/hlbridge/hlbridge/bridge/queue"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Intake benchmarks: how many webhooks per second the HTTP intake commits
// durably and answers 202, over real HTTP on loopback, beside a no-op gin
// handler that shows what HTTP and gin alone cost on the same machine.
// The queue's workers are not started, so only the intake is measured:
// WordPress and HighLevel are never called. cmd/hlbench measures the same
// with fixed-rate latency, the storm drain and memory; see the README.
//
//	go test -bench Intake -run '^$' ./bridge/e2e/
//	HLBRIDGE_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go test -bench IntakePostgres -run '^$' ./bridge/e2e/
//
// Each reports webhooks/s and the ack latency p50/p99 (ms) besides ns/op.
// Client and server share the machine's cores.

// benchContacts is how many contacts the benchmark webhooks cycle over, so
// that a contact's later webhooks coalesce into its pending request.
const benchContacts = 1000

func BenchmarkIntakeNoop(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/", func(c *gin.Context) {
		io.Copy(io.Discard, c.Request.Body)
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
	})
	benchIntake(b, e, "noop")
}

func BenchmarkIntakeSQLite(b *testing.B) {
	h, key := benchBridge(b, filepath.Join(b.TempDir(), "hlbridge.db"))
	benchIntake(b, h, key)
}

func BenchmarkIntakePostgres(b *testing.B) {
	h, key := benchBridge(b, testkit.PostgresDB(b, "hlbridge_bench_"))
	benchIntake(b, h, key)
}

// benchBridge is the bridge's HTTP intake on the durable queue in dsn, in
// HighLevel-token mode, with the queue's workers not started. WordPress and
// HighLevel point at a closed port: nothing reaches them.
func benchBridge(b *testing.B, dsn string) (http.Handler, string) {
	b.Helper()
	wp, err := wordpress.New(wordpress.Config{URL: "http://127.0.0.1:9", Username: "bench", AppPassword: "unused"})
	if err != nil {
		b.Fatal(err)
	}
	hl, err := highlevel.New(highlevel.Config{BaseURL: "http://127.0.0.1:9", Token: "pit-bench", LocationID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	fieldMap, err := bridge.ParseFieldMap("first_name=firstName,last_name=lastName")
	if err != nil {
		b.Fatal(err)
	}
	syncer, err := bridge.NewSyncer(bridge.Config{DefaultRole: "subscriber", FieldMap: fieldMap,
		TagsMetaKey: "highlevel_tags", ContactIDMetaKey: "highlevel_contact_id"}, wp, hl, nil)
	if err != nil {
		b.Fatal(err)
	}
	store, err := queue.OpenStore(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	// A syncer, so the queue is the one hlbridge serves with; not started.
	q, err := queue.New(store, syncer, queue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	key := "key-" + benchRandom(12)
	srv, err := httpapi.NewServer(httpapi.Config{AccessKey: key},
		httpapi.Deps{Syncer: syncer, Dispatcher: q, Events: q})
	if err != nil {
		b.Fatal(err)
	}
	return srv, key
}

// benchIntake sends distinct webhooks (WP Fusion's URL and a HighLevel
// workflow body, over benchContacts contacts) from 8 goroutines per CPU.
func benchIntake(b *testing.B, h http.Handler, key string) {
	hs := httptest.NewServer(h)
	defer hs.Close()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	runID := benchRandom(4)
	var seq atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var failures atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			i := int(seq.Add(1))
			u, body := benchWebhook(hs.URL, key, runID, i)
			start := time.Now()
			resp, err := client.Post(u, "application/json", bytes.NewReader(body))
			if err != nil {
				failures.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if resp.StatusCode != http.StatusAccepted {
				failures.Add(1)
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Errorf("%d of %d webhooks were not answered 202", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
	if len(all) > 0 {
		slices.Sort(all)
		pct := func(p float64) float64 {
			return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	}
}

// benchWebhook is the i-th webhook of a run: add for a contact's first,
// then update and update_tags, each with a distinct body (a HighLevel bulk
// edit changes the contact), so none is taken for a retried delivery.
func benchWebhook(base, key, runID string, i int) (string, []byte) {
	n := i % benchContacts
	contactID := fmt.Sprintf("bench%s%011d", runID, n)
	action := []string{"update", "update_tags"}[i%2]
	if i < benchContacts {
		action = "add"
	}
	q := url.Values{"wpf_action": {action}, "access_key": {key}, "contact_id": {contactID}}
	body, _ := json.Marshal(map[string]any{
		"contact_id": contactID, "first_name": "Ann" + strconv.Itoa(i), "last_name": "Lee",
		"full_name": "Ann Lee", "email": fmt.Sprintf("bench-%s-%d@example.test", runID, n),
		"phone": "+15555550100", "tags": "vip,course two,round " + strconv.Itoa(i/benchContacts),
		"address1": "1 Main St", "city": "Springfield", "state": "IL", "country": "US", "postal_code": "62701",
		"timezone": "America/Chicago", "date_created": "2026-08-04T14:53:09.703Z",
		"contact_source": "web form", "contact_type": "lead", "company_name": "Acme Learning",
		"location":    map[string]any{"name": "Acme Learning", "id": "ve9EPM428h8vShlRW1KT"},
		"workflow":    map[string]any{"id": "6a1f0d2c-8e37-4b5a-9d6e-2f4c1b7a9e30", "name": "Sync to WordPress"},
		"triggerData": map[string]any{}, "customData": map[string]any{"wp_role": "subscriber"},
	})
	return base + "/?" + q.Encode(), body
}

func benchRandom(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}
