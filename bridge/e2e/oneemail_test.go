package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/wordpress/wordpresstest"
)

// Two different contacts with one email, added at the same moment, make
// one user: the companion creates users atomically per email, and the
// second contact gets the documented refusal naming the first's user.
// Twenty such pairs run at once.
func TestOneUserPerEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	site.SlowEmailCheck(t) // without the companion's lock, most rounds would then make two users
	s := b.syncerFor(t, nil, func(c *bridge.Config) { c.ReturnPasswordField = "" })
	const rounds = 20
	type outcome struct {
		res bridge.Result
		err error
	}
	contacts := make([][2]highlevel.Contact, rounds)
	outcomes := make([][2]outcome, rounds)
	for r := range rounds {
		first := b.contact(t, func(c *highlevel.Contact) { c.Email = wordpresstest.SlowEmailCheckMarker + c.Email })
		second := b.contact(t, func(c *highlevel.Contact) { c.Email = first.Email; c.FirstName = "Grace" })
		contacts[r] = [2]highlevel.Contact{first, second}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for r := range rounds {
		for i := range 2 {
			wg.Go(func() {
				// A time-out on this busy machine is retried, as the queue would.
				req := bridge.Request{Action: bridge.ActionAdd, ContactID: contacts[r][i].ID}
				res, err := s.Apply(context.Background(), req)
				for try := 0; try < 3 && bridge.Retryable(err); try++ {
					res, err = s.Apply(context.Background(), req)
				}
				outcomes[r][i] = outcome{res, err}
			})
		}
	}
	wg.Wait()
	applied := time.Since(start)
	// Every user with each email, and the contact it is linked to, in one look.
	emails := make([]string, rounds)
	for r := range rounds {
		emails[r] = contacts[r][0].Email
	}
	out := site.Eval(t, `global $wpdb;
$found = array();
foreach ($args as $email) {
	$rows = $wpdb->get_results($wpdb->prepare("SELECT ID FROM {$wpdb->users} WHERE user_email = %s", $email));
	$found[$email] = array();
	foreach ($rows as $row) {
		$found[$email][] = array('id' => (int) $row->ID, 'contact' => (string) get_user_meta((int) $row->ID, 'highlevel_contact_id', true));
	}
}
echo wp_json_encode($found);`, emails...)
	var found map[string][]struct {
		ID      int64  `json:"id"`
		Contact string `json:"contact"`
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for r := range rounds {
		users := found[emails[r]]
		if len(users) != 1 {
			t.Errorf("round %d: %d users have the email %s, want 1", r, len(users), emails[r])
			continue
		}
		u, linked := users[0], users[0].Contact
		winner := -1
		for i, c := range contacts[r] {
			if c.ID == linked {
				winner = i
			}
		}
		if winner < 0 {
			t.Errorf("round %d: user %d is linked to %v, neither contact", r, u.ID, linked)
			continue
		}
		won, lost := outcomes[r][winner], outcomes[r][1-winner]
		if won.err != nil || !won.res.Created || won.res.UserID != u.ID {
			t.Errorf("round %d: the linked contact's add: %+v, %v; want it to create user %d", r, won.res, won.err, u.ID)
		}
		want := fmt.Sprintf("user %d has the email of contact %s but is linked to contact %s", u.ID, contacts[r][1-winner].ID, linked)
		if !errors.Is(lost.err, bridge.ErrRefused) || !strings.Contains(lost.err.Error(), want) {
			t.Errorf("round %d: the other contact's add: %v; want the refusal %q", r, lost.err, want)
		}
	}
	t.Logf("%d pairs of adds applied at once in %v", rounds, applied.Round(time.Millisecond))
}
