package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/bridge"
	"github.com/hlbridge/hlbridge/highlevel"
	"github.com/hlbridge/hlbridge/internal/testkit"
)

// appSigner signs app webhooks as HighLevel does, with a test key pair
// that the bridge under test is configured to trust.
type appSigner struct{ key ed25519.PrivateKey }

func newAppSigner(t *testing.T) (*appSigner, *highlevel.Verifier) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := highlevel.NewVerifier(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "")
	if err != nil {
		t.Fatal(err)
	}
	return &appSigner{key: priv}, v
}

// post sends an app event, signed unless sig is given.
func (a *appSigner) post(t *testing.T, b *bundle, event map[string]any, sig string) (int, reply) {
	t.Helper()
	body, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, b.url+"/hooks/highlevel/app", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig == "" {
		sig = base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, body))
	}
	if sig != "none" {
		req.Header.Set("X-GHL-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

func appEvent(typ, contactID, location string, mutate ...func(map[string]any)) map[string]any {
	ev := map[string]any{
		"type": typ, "locationId": location, "id": contactID,
		"webhookId": testkit.RandomID(8) + "-" + testkit.RandomID(4) + "-" + testkit.RandomID(12),
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "appId": "app1", "versionId": "v1",
	}
	for _, m := range mutate {
		m(ev)
	}
	return ev
}

func TestAppEvents(t *testing.T) {
	t.Parallel()
	signer, verifier := newAppSigner(t)
	b := setup(t, withQueue(fastQueue), func(s *settings) { s.verifier = verifier })
	c := b.contact(t)
	if status, r := b.wpf(t, "add", c.ID, "sync", "true"); status != http.StatusOK {
		t.Fatalf("add: %d %+v", status, r)
	}
	c.FirstName, c.Tags = "Signed", []string{"from app"}
	b.hl.PutContact(c)
	ev := appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID)
	status, r := signer.post(t, b, ev, "")
	if status != http.StatusAccepted {
		t.Fatalf("signed ContactUpdate: %d %+v", status, r)
	}
	if e := b.waitEvent(t, r.EventID, 30*time.Second); e.Status != bridge.StatusDone || e.Action != bridge.ActionUpdate {
		t.Fatalf("event = %+v", e)
	}
	if u := b.user(t, c.Email); u.FirstName != "Signed" {
		t.Errorf("user after ContactUpdate = %+v", u)
	}
	// A replay of the same webhookId is acknowledged and does nothing.
	if status, r2 := signer.post(t, b, ev, ""); status != http.StatusOK || r2.Status != "duplicate" {
		t.Errorf("replayed webhookId: %d %+v", status, r2)
	}

	cases := []struct {
		name   string
		event  map[string]any
		sig    string
		status int
		want   string
	}{
		{"unsigned", appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID), "none", 401, "not signed"},
		{"forged", appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID), base64.StdEncoding.EncodeToString(make([]byte, 64)), 401, "does not verify"},
		{"stale", appEvent(highlevel.EventContactUpdate, c.ID, b.hl.LocationID, func(m map[string]any) {
			m["timestamp"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		}), "", 400, ""},
		{"no type", appEvent("", c.ID, b.hl.LocationID), "", 400, ""},
		{"delete is not acted on", appEvent(highlevel.EventContactDelete, c.ID, b.hl.LocationID), "", 200, ""},
		{"another location", appEvent(highlevel.EventContactUpdate, c.ID, "otherLocation123"), "", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, r := signer.post(t, b, tc.event, tc.sig)
			if status != tc.status || !strings.Contains(r.Error, tc.want) {
				t.Errorf("%d %+v, want %d mentioning %q", status, r, tc.status, tc.want)
			}
			if status == 200 && r.Status != "ignored" {
				t.Errorf("status %q, want ignored", r.Status)
			}
		})
	}
	// Tag updates touch only the tags.
	c.FirstName, c.Tags = "Not applied", []string{"tag via app"}
	b.hl.PutContact(c)
	status, r = signer.post(t, b, appEvent(highlevel.EventContactTagUpdate, c.ID, b.hl.LocationID), "")
	if status != http.StatusAccepted {
		t.Fatalf("ContactTagUpdate: %d %+v", status, r)
	}
	b.waitEvent(t, r.EventID, 30*time.Second)
	u := b.user(t, c.Email)
	tags, _ := b.meta(t, u.ID, "highlevel_tags")["highlevel_tags"].([]string)
	if u.FirstName != "Signed" || strings.Join(tags, ",") != "tag via app" {
		t.Errorf("after ContactTagUpdate: first name %q, tags %v", u.FirstName, tags)
	}
	// A ContactCreate for a contact without a user creates none.
	other := b.contact(t)
	status, r = signer.post(t, b, appEvent(highlevel.EventContactCreate, other.ID, b.hl.LocationID), "")
	if status != http.StatusAccepted {
		t.Fatalf("ContactCreate: %d %+v", status, r)
	}
	if e := b.waitEvent(t, r.EventID, 30*time.Second); e.Status != bridge.StatusRefused {
		t.Errorf("ContactCreate without a user: %+v, want refused", e)
	}
	if _, err := b.wp.UserByEmail(context.Background(), other.Email); err == nil {
		t.Error("an app event created a user")
	}
}
