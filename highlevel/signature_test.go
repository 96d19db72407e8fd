package highlevel_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlbridge/hlbridge/highlevel"
)

// signer is a test key pair for each signature scheme, standing in for
// HighLevel's private keys.
type signer struct {
	ed     ed25519.PrivateKey
	rsa    *rsa.PrivateKey
	edPEM  string // SPKI PEM of the Ed25519 public key
	rsaPEM string // SPKI PEM of the RSA public key
}

// newSigner generates a fresh signer. It panics on failure, which
// crypto/rand does not have.
func newSigner() *signer {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return &signer{
		ed:     edPriv,
		rsa:    rsaPriv,
		edPEM:  publicPEM(edPriv.Public()),
		rsaPEM: publicPEM(rsaPriv.Public()),
	}
}

// testSigners returns two independent signers, generated once per test
// binary: RSA key generation is slow under -race.
var testSigners = sync.OnceValues(func() (*signer, *signer) {
	return newSigner(), newSigner()
})

// publicPEM encodes a public key as HighLevel publishes its own: SPKI PEM.
func publicPEM(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func (s *signer) verifier(t testing.TB) *highlevel.Verifier {
	t.Helper()
	v, err := highlevel.NewVerifier(s.edPEM, s.rsaPEM)
	if err != nil {
		t.Fatalf("NewVerifier(test keys): %v", err)
	}
	return v
}

// signEd25519 returns the X-GHL-Signature value for body.
func (s *signer) signEd25519(body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.ed, body))
}

// signRSA returns the X-WH-Signature value for body.
func (s *signer) signRSA(t testing.TB, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	s, other := testSigners()
	v := s.verifier(t)
	body := []byte(`{"type":"ContactUpdate","id":"c1","webhookId":"w1","timestamp":"2026-08-04T14:53:10Z"}`)
	tampered := bytes.Replace(body, []byte(`"c1"`), []byte(`"c2"`), 1)

	edSig := s.signEd25519(body)
	rsaSig := s.signRSA(t, body)
	sha1Digest := sha1.Sum(body)
	rsaSHA1, err := rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA1, sha1Digest[:])
	if err != nil {
		t.Fatal(err)
	}
	rawEd, _ := base64.StdEncoding.DecodeString(edSig)

	const (
		ghl = highlevel.HeaderSignature
		wh  = highlevel.HeaderLegacySignature
	)
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		wantErr error
		detail  string // in the error text, when wantErr is ErrBadSignature
	}{
		{"valid Ed25519", headers(ghl, edSig), body, nil, ""},
		{"valid RSA legacy", headers(wh, rsaSig), body, nil, ""},
		{"both valid", headers(ghl, edSig, wh, rsaSig), body, nil, ""},
		{"Ed25519 preferred over a bad legacy signature", headers(ghl, edSig, wh, "bm90IGEgc2lnbmF0dXJl"), body, nil, ""},
		{"bad Ed25519 is not rescued by a valid RSA", headers(ghl, s.signEd25519(tampered), wh, rsaSig), body, highlevel.ErrBadSignature, ghl},
		{"undecodable Ed25519 is not rescued by a valid RSA", headers(ghl, "%%%", wh, rsaSig), body, highlevel.ErrBadSignature, "base64"},
		{"N/A Ed25519 falls back to RSA", headers(ghl, "N/A", wh, rsaSig), body, nil, ""},
		{"n/a with spaces is absent too", headers(ghl, " n/a ", wh, rsaSig), body, nil, ""},
		{"N/A RSA beside a valid Ed25519", headers(ghl, edSig, wh, "N/A"), body, nil, ""},
		{"both N/A", headers(ghl, "N/A", wh, "N/A"), body, highlevel.ErrUnsigned, ""},
		{"no headers", http.Header{}, body, highlevel.ErrUnsigned, ""},
		{"nil header", nil, body, highlevel.ErrUnsigned, ""},
		{"blank headers", headers(ghl, " ", wh, ""), body, highlevel.ErrUnsigned, ""},
		{"lower-case header names", http.Header{"X-Ghl-Signature": {edSig}}, body, nil, ""},
		{"Ed25519 over a tampered body", headers(ghl, edSig), tampered, highlevel.ErrBadSignature, "does not match"},
		{"RSA over a tampered body", headers(wh, rsaSig), tampered, highlevel.ErrBadSignature, wh},
		{"Ed25519 by another key", headers(ghl, other.signEd25519(body)), body, highlevel.ErrBadSignature, "does not match"},
		{"RSA by another key", headers(wh, other.signRSA(t, body)), body, highlevel.ErrBadSignature, "does not match"},
		{"Ed25519 bad base64", headers(ghl, "not base64!"), body, highlevel.ErrBadSignature, "base64"},
		{"RSA bad base64", headers(wh, "not base64!"), body, highlevel.ErrBadSignature, "base64"},
		{"Ed25519 truncated", headers(ghl, base64.StdEncoding.EncodeToString(rawEd[:32])), body, highlevel.ErrBadSignature, "32 bytes"},
		{"Ed25519 unpadded base64", headers(ghl, strings.TrimRight(edSig, "=")), body, nil, ""},
		{"RSA over SHA-1 instead of SHA-256", headers(wh, base64.StdEncoding.EncodeToString(rsaSHA1)), body, highlevel.ErrBadSignature, wh},
		{"Ed25519 signature in the RSA header", headers(wh, edSig), body, highlevel.ErrBadSignature, wh},
		{"empty body, signed", headers(ghl, s.signEd25519(nil)), nil, nil, ""},
		{"empty body, signature of another", headers(ghl, edSig), nil, highlevel.ErrBadSignature, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := v.Verify(tt.header, tt.body)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("Verify error %q does not say %q", err, tt.detail)
			}
			if highlevel.Retryable(err) {
				t.Errorf("signature error %v is retryable", err)
			}
		})
	}
}

// TestVerifyZeroVerifier checks that a Verifier not made by NewVerifier
// fails closed instead of panicking.
func TestVerifyZeroVerifier(t *testing.T) {
	t.Parallel()
	s, _ := testSigners()
	body := []byte(`{}`)
	for name, v := range map[string]*highlevel.Verifier{"nil": nil, "zero": {}} {
		for _, h := range []http.Header{
			headers(highlevel.HeaderSignature, s.signEd25519(body)),
			headers(highlevel.HeaderLegacySignature, s.signRSA(t, body)),
		} {
			if err := v.Verify(h, body); !errors.Is(err, highlevel.ErrBadSignature) {
				t.Errorf("%s Verifier: Verify = %v, want ErrBadSignature", name, err)
			}
		}
		if err := v.Verify(http.Header{}, body); !errors.Is(err, highlevel.ErrUnsigned) {
			t.Errorf("%s Verifier, no headers: Verify = %v, want ErrUnsigned", name, err)
		}
	}
}

func TestDefaultVerifierUsesPublishedKeys(t *testing.T) {
	t.Parallel()
	s, _ := testSigners()

	// The published keys are what the reference says they are.
	for _, tt := range []struct {
		name, pem string
		check     func(any) error
	}{
		{"Ed25519", highlevel.PublishedEd25519PublicKey, func(k any) error {
			if _, ok := k.(ed25519.PublicKey); !ok {
				return fmt.Errorf("got %T", k)
			}
			return nil
		}},
		{"RSA", highlevel.PublishedRSAPublicKey, func(k any) error {
			r, ok := k.(*rsa.PublicKey)
			if !ok {
				return fmt.Errorf("got %T", k)
			}
			if r.N.BitLen() != 4096 {
				return fmt.Errorf("%d bits, want 4096", r.N.BitLen())
			}
			return nil
		}},
	} {
		block, _ := pem.Decode([]byte(tt.pem))
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("published %s key is not an SPKI PEM block", tt.name)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatalf("published %s key: %v", tt.name, err)
		}
		if err := tt.check(key); err != nil {
			t.Errorf("published %s key: %v", tt.name, err)
		}
	}

	d := highlevel.DefaultVerifier()
	if d == nil || d != highlevel.DefaultVerifier() {
		t.Fatal("DefaultVerifier is nil or not shared")
	}
	fromEmpty, err := highlevel.NewVerifier("", "")
	if err != nil {
		t.Fatalf(`NewVerifier("", ""): %v`, err)
	}
	body := []byte(`{"type":"ContactCreate","id":"c1","webhookId":"w1"}`)
	for _, h := range []http.Header{
		headers(highlevel.HeaderSignature, s.signEd25519(body)),
		headers(highlevel.HeaderLegacySignature, s.signRSA(t, body)),
	} {
		for name, v := range map[string]*highlevel.Verifier{"DefaultVerifier": d, `NewVerifier("", "")`: fromEmpty} {
			if err := v.Verify(h, body); !errors.Is(err, highlevel.ErrBadSignature) {
				t.Errorf("%s accepted a body signed by a test key: %v", name, err)
			}
		}
	}

	// "" selects the published key for that scheme only.
	mixed, err := highlevel.NewVerifier("", s.rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := mixed.Verify(headers(highlevel.HeaderLegacySignature, s.signRSA(t, body)), body); err != nil {
		t.Errorf("custom RSA key beside the default Ed25519 key: %v", err)
	}
	if err := mixed.Verify(headers(highlevel.HeaderSignature, s.signEd25519(body)), body); !errors.Is(err, highlevel.ErrBadSignature) {
		t.Errorf("default Ed25519 key accepted a test signature: %v", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	s, _ := testSigners()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&s.rsa.PublicKey)}))
	garbage := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")}))

	tests := []struct {
		name         string
		edPEM        string
		rsaPEM       string
		wantInErrors []string
	}{
		{"not PEM", "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=", "", []string{"Ed25519 public key", "no PEM block"}},
		{"RSA key as Ed25519", s.rsaPEM, "", []string{"Ed25519 public key", "an RSA key", "want an Ed25519 key"}},
		{"Ed25519 key as RSA", "", s.edPEM, []string{"RSA public key", "an Ed25519 key", "want an RSA key"}},
		{"ECDSA key", publicPEM(ec.Public()), "", []string{"Ed25519 public key", "ecdsa"}},
		{"PKCS#1 block", "", pkcs1, []string{"RSA public key", `"RSA PUBLIC KEY"`, "SPKI"}},
		{"not DER inside", garbage, "", []string{"Ed25519 public key", "not a valid SPKI public key"}},
		{"two blocks", s.edPEM + s.edPEM, "", []string{"Ed25519 public key", "exactly one key"}},
		{"RSA under 2048 bits", "", publicPEM(small.Public()), []string{"RSA public key", "1024 bits", "at least 2048"}},
	}
	for _, tt := range tests {
		v, err := highlevel.NewVerifier(tt.edPEM, tt.rsaPEM)
		if err == nil || v != nil {
			t.Errorf("%s: NewVerifier = %v, %v; want an error", tt.name, v, err)
			continue
		}
		for _, want := range tt.wantInErrors {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, want)
			}
		}
	}
}

func TestNewVerifierAcceptsFlattenedPEM(t *testing.T) {
	t.Parallel()
	s, _ := testSigners()
	flat := func(p string) string { return strings.ReplaceAll(p, "\n", `\n`) }
	v, err := highlevel.NewVerifier(flat(s.edPEM), "  "+flat(s.rsaPEM)+"  ")
	if err != nil {
		t.Fatalf("NewVerifier with literal \\n line breaks: %v", err)
	}
	body := []byte(`{"a":1}`)
	if err := v.Verify(headers(highlevel.HeaderSignature, s.signEd25519(body)), body); err != nil {
		t.Error(err)
	}
	if err := v.Verify(headers(highlevel.HeaderLegacySignature, s.signRSA(t, body)), body); err != nil {
		t.Error(err)
	}
}

// TestSignedFixturesEndToEnd runs each app webhook fixture through what the
// bridge does with a delivery: verify, parse, check freshness.
func TestSignedFixturesEndToEnd(t *testing.T) {
	t.Parallel()
	s, _ := testSigners()
	v := s.verifier(t)
	fixtures, err := filepath.Glob(filepath.Join("testdata", "app_*.json"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no app fixtures: %v", err)
	}
	for _, p := range fixtures {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []http.Header{
			headers(highlevel.HeaderSignature, s.signEd25519(body), highlevel.HeaderLegacySignature, "N/A"),
			headers(highlevel.HeaderLegacySignature, s.signRSA(t, body)),
		} {
			if err := v.Verify(h, body); err != nil {
				t.Errorf("%s: Verify: %v", p, err)
			}
		}
		ev, err := highlevel.ParseAppEvent(body)
		if err != nil {
			t.Errorf("%s: ParseAppEvent: %v", p, err)
			continue
		}
		if err := ev.CheckFresh(ev.Timestamp.Add(30*time.Second), 0); err != nil {
			t.Errorf("%s: CheckFresh 30s later: %v", p, err)
		}
		// Re-encoding changes the bytes, so the signature no longer holds.
		var out bytes.Buffer
		if err := json.Compact(&out, body); err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(headers(highlevel.HeaderSignature, s.signEd25519(body)), out.Bytes()); !errors.Is(err, highlevel.ErrBadSignature) {
			t.Errorf("%s: re-encoded body verified: %v", p, err)
		}
	}
}

// FuzzVerify checks that no header value or body panics Verify and that
// only the two sentinels come back: without the private key, nothing the
// fuzzer makes may verify.
//
//	go test ./highlevel -run '^$' -fuzz FuzzVerify -fuzztime 1m -fuzzminimizetime 2s
func FuzzVerify(f *testing.F) {
	f.Add("", "", []byte(nil))
	f.Add("N/A", "N/A", []byte("{}"))
	f.Add(strings.Repeat("A", 86)+"==", "", []byte("{}"))
	f.Add("", strings.Repeat("A", 684)+"==", []byte("{}"))
	f.Add("%%%", "abc", []byte(`{"type":"ContactCreate"}`))
	v := highlevel.DefaultVerifier()
	f.Fuzz(func(t *testing.T, ghl, wh string, body []byte) {
		h := http.Header{}
		if ghl != "" {
			h[http.CanonicalHeaderKey(highlevel.HeaderSignature)] = []string{ghl}
		}
		if wh != "" {
			h[http.CanonicalHeaderKey(highlevel.HeaderLegacySignature)] = []string{wh}
		}
		err := v.Verify(h, body)
		if err == nil {
			t.Fatalf("forged delivery verified: ghl=%q wh=%q", ghl, wh)
		}
		if !errors.Is(err, highlevel.ErrUnsigned) && !errors.Is(err, highlevel.ErrBadSignature) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// ExampleVerifier_Verify shows an app webhook handler's checks, in order.
// The key is a fixed test key; production uses DefaultVerifier.
func ExampleVerifier_Verify() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	verifier, err := highlevel.NewVerifier(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "")
	if err != nil {
		fmt.Println(err)
		return
	}

	body := []byte(`{"type":"ContactTagUpdate","locationId":"loc1","id":"c1","tags":["vip"],` +
		`"webhookId":"4b6c2a1e-9f3d-4e8a-b7c5-1d2e3f4a5b6c","timestamp":"2026-08-04T14:53:10Z"}`)
	h := http.Header{}
	h.Set(highlevel.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body)))
	h.Set(highlevel.HeaderLegacySignature, "N/A")

	if err := verifier.Verify(h, body); err != nil { // the raw bytes, before decoding
		fmt.Println("reject:", err)
		return
	}
	ev, err := highlevel.ParseAppEvent(body)
	if err != nil {
		fmt.Println("reject:", err)
		return
	}
	now := time.Date(2026, 8, 4, 14, 54, 0, 0, time.UTC)
	if err := ev.CheckFresh(now, highlevel.DefaultFreshWindow); err != nil {
		fmt.Println("reject:", err)
		return
	}
	// Next, the bridge's store rejects a WebhookID it has seen before.
	fmt.Println(ev.Type, ev.WebhookID, ev.ContactID, ev.Contact.Tags)

	if err := verifier.Verify(h, bytes.Replace(body, []byte("vip"), []byte("vvip"), 1)); err != nil {
		fmt.Println("tampered:", errors.Is(err, highlevel.ErrBadSignature))
	}
	// Output:
	// ContactTagUpdate 4b6c2a1e-9f3d-4e8a-b7c5-1d2e3f4a5b6c c1 [vip]
	// tampered: true
}
