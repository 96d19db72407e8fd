// Package wordpress is hlbridge's door to a WordPress site: a client of the
// WordPress REST API (users) and of the hlbridge companion must-use plugin
// (arbitrary user meta, lookups by meta, WordPress's own new-user
// notification), authenticated with an application password.
//
// It knows the surprises of the users API so callers do not have to: a wrong
// application password is silently anonymous (Verify catches it), search is a
// substring match (the finders filter for exact matches), a duplicate email
// on create is a 500 (it is reported as ErrDuplicateEmail, not as a
// retryable failure), unregistered meta keys are silently dropped by core
// REST (meta goes through the companion plugin instead), and sites without
// pretty permalinks serve the REST API only at ?rest_route=.
//
// The package knows nothing of HighLevel or of the bridge's rules.
package wordpress
