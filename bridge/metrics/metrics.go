// Package metrics holds hlbridge's Prometheus registry and the counters
// that the queue and the HTTP surface record into, so that both serve one
// /metrics without importing each other, and the rules (package bridge)
// stay free of Prometheus. Labels are drawn from small fixed sets
// (actions, statuses, call names): never an id, a URL or a secret.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/wordpress"
)

// Metrics are hlbridge's Prometheus metrics, served at /metrics. Labels are
// drawn from small fixed sets (actions, statuses, call names): never an id,
// a URL or a secret. A nil *Metrics records nothing.
type Metrics struct {
	reg            *prometheus.Registry
	webhooks       *prometheus.CounterVec
	syncs          *prometheus.CounterVec
	syncSeconds    prometheus.Histogram
	wordpressCalls *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
}

// New returns a fresh registry with hlbridge's metrics and the Go
// runtime's and process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hlbridge_webhooks_total",
			Help: "Webhooks received, by action and HTTP status answered.",
		}, []string{"action", "status"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hlbridge_syncs_total",
			Help: "Contact syncs run by the queue, by outcome: done, refused, failed, retry (will try again), snoozed (rate limited).",
		}, []string{"outcome"}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hlbridge_sync_duration_seconds",
			Help:    "Time one contact sync takes, WordPress and HighLevel calls included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		wordpressCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hlbridge_wordpress_calls_total",
			Help: "Calls the bridge made to WordPress, by call; create_user, update_user, set_meta and notify write.",
		}, []string{"call"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hlbridge_auth_failures_total",
			Help: "Requests with a missing or wrong secret, by surface (workflow: access_key, hook: X-Access-Key, admin: bearer token) and HTTP status answered (401, or 429 once the address failed too often).",
		}, []string{"surface", "status"}),
	}
	m.reg.MustRegister(m.webhooks, m.syncs, m.syncSeconds, m.wordpressCalls, m.authFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Webhook counts one webhook answered with status; action is an action's
// name, "app_event" or "invalid".
func (m *Metrics) Webhook(action string, status int) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(action, strconv.Itoa(status)).Inc()
}

// AuthFailure counts one request refused for its secret, by surface
// (workflow, hook, admin) and status. The client's address is deliberately
// not a label: it would make the series unbounded.
func (m *Metrics) AuthFailure(surface string, status int) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(surface, strconv.Itoa(status)).Inc()
}

// Sync records one sync's outcome (done, refused, failed, retry, snoozed)
// and duration.
func (m *Metrics) Sync(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.syncs.WithLabelValues(outcome).Inc()
	m.syncSeconds.Observe(took.Seconds())
}

// QueueDepth exports the number of queued events as the gauge
// hlbridge_events_queued, read from the store with count when scraped: it
// is given two seconds, and an error shows as -1. Call it once.
func (m *Metrics) QueueDepth(count func(ctx context.Context) (int64, error)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hlbridge_events_queued",
		Help: "Accepted webhooks not yet applied.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// WordPressLimit exports limit, the number of requests the WordPress
// client currently lets be in flight (it adapts to the site's response
// time), as the gauge hlbridge_wordpress_concurrency_limit, read when
// scraped. Call it once.
func (m *Metrics) WordPressLimit(limit func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hlbridge_wordpress_concurrency_limit",
		Help: "Requests to WordPress allowed in flight at once, adapted to the site's response time (at most BRIDGE_WORDPRESS_CONCURRENCY).",
	}, func() float64 { return float64(limit()) }))
}

// Users wraps u so that every call to WordPress is counted.
func (m *Metrics) Users(u bridge.Users) bridge.Users {
	if m == nil {
		return u
	}
	return countedUsers{Users: u, calls: m.wordpressCalls}
}

type countedUsers struct {
	bridge.Users
	calls *prometheus.CounterVec
}

func (c countedUsers) count(call string) { c.calls.WithLabelValues(call).Inc() }

func (c countedUsers) UserByID(ctx context.Context, id int64) (*wordpress.User, error) {
	c.count("user_by_id")
	return c.Users.UserByID(ctx, id)
}

func (c countedUsers) FindUser(ctx context.Context, key, value, email string) ([]int64, *wordpress.User, error) {
	c.count("find_user")
	return c.Users.FindUser(ctx, key, value, email)
}

func (c countedUsers) UsersByMeta(ctx context.Context, key, value string) ([]int64, error) {
	c.count("users_by_meta")
	return c.Users.UsersByMeta(ctx, key, value)
}

func (c countedUsers) CreateUser(ctx context.Context, nu wordpress.NewUser) (*wordpress.User, error) {
	c.count("create_user")
	return c.Users.CreateUser(ctx, nu)
}

func (c countedUsers) FindOrCreateUser(ctx context.Context, key, value string, nu wordpress.NewUser) ([]int64, *wordpress.User, bool, error) {
	c.count("find_or_create_user")
	return c.Users.FindOrCreateUser(ctx, key, value, nu)
}

func (c countedUsers) UpdateUser(ctx context.Context, id int64, up wordpress.UserUpdate) (*wordpress.User, error) {
	c.count("update_user")
	return c.Users.UpdateUser(ctx, id, up)
}

func (c countedUsers) Meta(ctx context.Context, id int64, keys ...string) (map[string]wordpress.MetaValue, error) {
	c.count("read_meta")
	return c.Users.Meta(ctx, id, keys...)
}

func (c countedUsers) SetMeta(ctx context.Context, id int64, values map[string]wordpress.MetaValue) (map[string]wordpress.MetaValue, error) {
	c.count("set_meta")
	return c.Users.SetMeta(ctx, id, values)
}

func (c countedUsers) SendPendingNotification(ctx context.Context, id int64, who wordpress.Notify, flag string) (bool, error) {
	c.count("notify")
	return c.Users.SendPendingNotification(ctx, id, who, flag)
}

func (c countedUsers) RemoveRoles(ctx context.Context, id int64, roles []string) ([]string, error) {
	c.count("remove_roles")
	return c.Users.RemoveRoles(ctx, id, roles)
}

func (c countedUsers) DeleteUser(ctx context.Context, id, reassign int64) error {
	c.count("delete_user")
	return c.Users.DeleteUser(ctx, id, reassign)
}

func (c countedUsers) PasswordResetLink(ctx context.Context, id int64) (string, error) {
	c.count("reset_link")
	return c.Users.PasswordResetLink(ctx, id)
}
