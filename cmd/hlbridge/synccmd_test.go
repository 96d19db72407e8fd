package main

import (
	"context"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// "hlbridge sync" creates a contact's user, then updates it, printing the
// user id and the fields changed; --dry-run prints the same decision and
// sends WordPress no write (counted at a proxy in front of the site) and
// HighLevel none either.
func TestSyncCommand(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "")
	u, err := url.Parse(site.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newSwitchProxy(t, u.Host)
	env := []string{"WORDPRESS_URL=http://" + proxy.addr}
	c := w.hl.PutContact(highlevel.Contact{FirstName: "Sync", LastName: "Command", Email: wordpresstest.UniqueEmail(t), Tags: []string{"member"}})
	ctx := context.Background()

	dry := func(want string, args ...string) {
		t.Helper()
		since, hlWrites := time.Now(), len(w.hl.Writes())
		r := w.command(env, append([]string{"sync", c.ID, "--dry-run"}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("sync %v --dry-run: exit %d, printed %q; want %q\n%s", args, r.code, r.stdout, want, r.stderr)
		}
		if n := proxy.writesSince(since); n > 0 {
			t.Errorf("sync --dry-run sent WordPress %d writes", n)
		}
		if n := len(w.hl.Writes()) - hlWrites; n > 0 {
			t.Errorf("sync --dry-run wrote to HighLevel %d times", n)
		}
	}

	// Not there yet: update (the default) is refused, add would create.
	if r := w.command(env, "sync", c.ID); r.code == 0 || !strings.Contains(r.stderr, "no WordPress user is linked") {
		t.Errorf("sync without a user: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	dry("dry run: would create a user for contact "+c.ID+"; changed: first_name, last_name, highlevel_contact_id, highlevel_tags; generated password would be written to HighLevel", "--action", "add")
	if ids, _ := w.wp.UsersByMeta(ctx, "highlevel_contact_id", c.ID); len(ids) != 0 {
		t.Fatalf("the dry run created users %v", ids)
	}

	before := time.Now()
	r := w.command(env, "sync", "--action", "add", c.ID)
	if proxy.writesSince(before) == 0 {
		t.Fatal("the proxy counted no write for a real sync: the dry runs' count proves nothing")
	}
	created := regexp.MustCompile(`^user (\d+) created for contact ` + c.ID + `; changed: first_name, last_name, highlevel_contact_id, highlevel_tags; generated password written to HighLevel\n$`)
	m := created.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("sync --action add: exit %d, printed %q\n%s", r.code, r.stdout, r.stderr)
	}
	user, err := w.wp.UserByEmail(ctx, c.Email)
	if err != nil || user.FirstName != "Sync" || m[1] != itoa(user.ID) {
		t.Fatalf("the user is %+v (%v); sync printed id %s", user, err, m[1])
	}

	if err := w.editContact(c.ID, "Renamed", []string{"member", "vip"}); err != nil {
		t.Fatal(err)
	}
	dry("dry run: would update user " + m[1] + " of contact " + c.ID + "; changed: first_name, highlevel_tags")
	if u, _ := w.wp.UserByID(ctx, user.ID); u.FirstName != "Sync" {
		t.Fatalf("the dry run renamed the user to %q", u.FirstName)
	}
	r = w.command(env, "sync", c.ID)
	if want := "user " + m[1] + " of contact " + c.ID + " updated; changed: first_name, highlevel_tags\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("sync: exit %d, printed %q; want %q\n%s", r.code, r.stdout, want, r.stderr)
	}
	if u, _ := w.wp.UserByID(ctx, user.ID); u.FirstName != "Renamed" {
		t.Errorf("after sync the first name is %q", u.FirstName)
	}
	dry("dry run: user " + m[1] + " of contact " + c.ID + " would not change")
	if r := w.command(env, "sync", c.ID, "--action", "update_tags"); r.stdout != "user "+m[1]+" of contact "+c.ID+" unchanged\n" {
		t.Errorf("a second sync printed %q", r.stdout)
	}

	if r := w.command([]string{"HIGHLEVEL_TOKEN=", "BRIDGE_RETURN_PASSWORD_FIELD="}, "sync", c.ID); r.code == 0 || !strings.Contains(r.stderr, "needs HIGHLEVEL_TOKEN") {
		t.Errorf("sync in payload mode: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := w.command(nil, "sync", c.ID, "--action", "test"); r.code == 0 || !strings.Contains(r.stderr, "want add, update or update_tags") {
		t.Errorf("sync --action test: exit %d, stderr %q", r.code, r.stderr)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
