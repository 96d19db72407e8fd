// Package bridge holds what hlbridge does: the WP Fusion-compatible webhook
// actions (add, update, update_tags, test), the mapping of a HighLevel
// contact onto a WordPress user, the rules that keep a site safe (no
// duplicate users, no administrator touched or granted, no secret logged),
// and the vocabulary its neighbours share: a Request, the Dispatcher that
// carries it out, and the Events an operator sees.
//
// It talks to HighLevel and WordPress only through the small interfaces
// Contacts and Users that it declares; package highlevel and package
// wordpress satisfy them. The durable delivery (package queue, on River and
// SQL) and the HTTP surface (package httpapi, on gin) each import bridge and
// never each other; bridge imports neither, nor any database or metrics
// library.
package bridge
