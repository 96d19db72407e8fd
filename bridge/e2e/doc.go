// Package e2e holds only tests: hlbridge's end-to-end tests, which send
// webhooks to the real HTTP surface (package httpapi) in front of the
// durable queue (package queue) or an inline dispatcher, and check the
// result in a real WordPress, with the fake HighLevel API; and the intake
// benchmarks. They live apart so that httpapi's own tests (its fuzz target
// above all) build without the queue's SQLite and River, and so that no
// product package imports both neighbours.
package e2e
