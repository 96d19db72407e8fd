package highlevel

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Headers carrying the signature of a Marketplace app webhook, each a
// base64 signature over the raw body bytes. HighLevel sends "N/A" in a
// header it did not fill.
const (
	// HeaderSignature carries the current Ed25519 signature.
	HeaderSignature = "X-GHL-Signature"
	// HeaderLegacySignature carries the legacy RSA PKCS#1 v1.5 SHA-256
	// signature, deprecated by HighLevel during 2026.
	HeaderLegacySignature = "X-WH-Signature"
)

// PublishedEd25519PublicKey is the Ed25519 public key (SPKI PEM) HighLevel
// publishes for checking HeaderSignature. NewVerifier uses it when given "".
const PublishedEd25519PublicKey = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----
`

// PublishedRSAPublicKey is the 4096-bit RSA public key (SPKI PEM) HighLevel
// publishes for checking HeaderLegacySignature. NewVerifier uses it when
// given "".
const PublishedRSAPublicKey = `-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
`

// minRSABits is the smallest legacy key NewVerifier accepts: smaller RSA
// keys are forgeable in practice, and HighLevel's own is 4096 bits.
const minRSABits = 2048

var (
	// ErrUnsigned means a delivery carried neither signature header (or
	// only "N/A" in them): it cannot have come from a HighLevel app
	// webhook. Permanent.
	ErrUnsigned = errors.New("highlevel: webhook is not signed")

	// ErrBadSignature means a signature header was present but was not
	// valid base64 or did not verify against the body and the configured
	// key: the body was altered, signed by someone else, or checked
	// against the wrong key. Permanent.
	ErrBadSignature = errors.New("highlevel: webhook signature does not verify")
)

// Verifier checks the signatures of HighLevel Marketplace app webhooks. It
// holds one Ed25519 key (HeaderSignature) and one RSA key
// (HeaderLegacySignature). Make one with NewVerifier or DefaultVerifier; it
// is immutable and safe for concurrent use. The zero Verifier has no keys
// and rejects every signed delivery with ErrBadSignature.
type Verifier struct {
	ed  ed25519.PublicKey
	rsa *rsa.PublicKey
}

// NewVerifier returns a Verifier for the given public keys, each an SPKI PEM
// block ("-----BEGIN PUBLIC KEY-----"). An empty string selects the key
// HighLevel publishes (PublishedEd25519PublicKey, PublishedRSAPublicKey),
// so tests pass their own keys and production passes "". A PEM whose line
// breaks were flattened to literal `\n` (common in environment variables)
// is accepted. RSA keys under 2048 bits are refused. Errors say which key
// is wrong and why, without repeating it.
func NewVerifier(ed25519PEM, rsaPEM string) (*Verifier, error) {
	if strings.TrimSpace(ed25519PEM) == "" {
		ed25519PEM = PublishedEd25519PublicKey
	}
	if strings.TrimSpace(rsaPEM) == "" {
		rsaPEM = PublishedRSAPublicKey
	}
	edKey, err := parsePublicKey(ed25519PEM)
	if err != nil {
		return nil, fmt.Errorf("highlevel: Ed25519 public key: %w", err)
	}
	ed, ok := edKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("highlevel: Ed25519 public key: PEM holds %s, want an Ed25519 key", keyKind(edKey))
	}
	rsaKey, err := parsePublicKey(rsaPEM)
	if err != nil {
		return nil, fmt.Errorf("highlevel: RSA public key: %w", err)
	}
	rk, ok := rsaKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("highlevel: RSA public key: PEM holds %s, want an RSA key", keyKind(rsaKey))
	}
	if bits := rk.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("highlevel: RSA public key: %d bits, want at least %d", bits, minRSABits)
	}
	return &Verifier{ed: ed, rsa: rk}, nil
}

// defaultVerifier parses the published keys once; they are constants, so a
// failure is a programming error caught by the package's tests.
var defaultVerifier = sync.OnceValue(func() *Verifier {
	v, err := NewVerifier(PublishedEd25519PublicKey, PublishedRSAPublicKey)
	if err != nil {
		panic(err)
	}
	return v
})

// DefaultVerifier returns the Verifier for the keys HighLevel publishes,
// the one production uses. Every call returns the same immutable value.
func DefaultVerifier() *Verifier { return defaultVerifier() }

// Verify checks one delivery's signature headers against its raw body, the
// exact bytes received, before any decoding. It returns nil when the
// delivery is authentic.
//
// When HeaderSignature (Ed25519) is present and not "N/A", it alone decides:
// if it fails, a valid HeaderLegacySignature does NOT rescue the delivery.
// HighLevel signs every delivery with both, so a genuine delivery never has
// a bad current signature; accepting the legacy one instead would let the
// deprecated scheme overrule the current one. Only without a current
// signature is HeaderLegacySignature (RSA PKCS#1 v1.5, SHA-256) checked.
//
// Neither header, or only "N/A" in them, gives ErrUnsigned. Bad base64, a
// signature of the wrong length or one that does not verify gives
// ErrBadSignature, wrapped with the header's name. Verify never panics,
// whatever the headers and body (a nil Verifier included). Checking the
// timestamp (AppEvent.CheckFresh) and rejecting a repeated webhookId
// remain the caller's: a valid signature does not stop a replay.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	if sig, ok := signatureHeader(h, HeaderSignature); ok {
		return v.verifyEd25519(sig, body)
	}
	if sig, ok := signatureHeader(h, HeaderLegacySignature); ok {
		return v.verifyRSA(sig, body)
	}
	return ErrUnsigned
}

func (v *Verifier) verifyEd25519(sig string, body []byte) error {
	raw, err := decodeSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: %s is not valid base64", ErrBadSignature, HeaderSignature)
	}
	if v == nil || len(v.ed) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: verifier has no Ed25519 key (use NewVerifier)", ErrBadSignature)
	}
	if len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrBadSignature, HeaderSignature, len(raw), ed25519.SignatureSize)
	}
	if !ed25519.Verify(v.ed, body, raw) {
		return fmt.Errorf("%w: %s does not match the body", ErrBadSignature, HeaderSignature)
	}
	return nil
}

func (v *Verifier) verifyRSA(sig string, body []byte) error {
	raw, err := decodeSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: %s is not valid base64", ErrBadSignature, HeaderLegacySignature)
	}
	if v == nil || v.rsa == nil {
		return fmt.Errorf("%w: verifier has no RSA key (use NewVerifier)", ErrBadSignature)
	}
	digest := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(v.rsa, crypto.SHA256, digest[:], raw); err != nil {
		return fmt.Errorf("%w: %s does not match the body", ErrBadSignature, HeaderLegacySignature)
	}
	return nil
}

// signatureHeader returns the first value of a signature header; ok is
// false when it is missing, blank or HighLevel's "N/A" placeholder.
func signatureHeader(h http.Header, name string) (string, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" || strings.EqualFold(v, "N/A") {
		return "", false
	}
	return v, true
}

// decodeSignature reads standard base64, padded as HighLevel sends it or
// unpadded. The signature still has to verify, so the leniency costs
// nothing.
func decodeSignature(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		return raw, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// parsePublicKey decodes exactly one SPKI "PUBLIC KEY" PEM block.
func parsePublicKey(s string) (any, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New(`no PEM block found, want "-----BEGIN PUBLIC KEY-----"`)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\" (SPKI)", block.Type)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("unexpected data after the PEM block, want exactly one key")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a valid SPKI public key: %w", err)
	}
	return key, nil
}

// keyKind names a parsed public key's algorithm for error messages.
func keyKind(key any) string {
	switch key.(type) {
	case ed25519.PublicKey:
		return "an Ed25519 key"
	case *rsa.PublicKey:
		return "an RSA key"
	default:
		return fmt.Sprintf("a %T", key)
	}
}
