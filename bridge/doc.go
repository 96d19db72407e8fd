// Package bridge holds what hlbridge does: the WP Fusion-compatible webhook
// actions (add, update, update_tags, test), the mapping of a HighLevel
// contact onto a WordPress user, the rules that keep a site safe (no
// duplicate users, no administrator touched or granted, no secret logged),
// and the HTTP intake that receives HighLevel's webhooks.
//
// It talks to HighLevel and WordPress only through the small interfaces
// Contacts and Users that it declares; package highlevel and package
// wordpress satisfy them.
package bridge
