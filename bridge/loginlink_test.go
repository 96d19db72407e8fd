package bridge

import (
	"errors"
	"strings"
	"testing"
)

// HighLevel's error messages can echo the request; every form of the link
// in them is scrubbed, and the key on its own too.
func TestScrubLink(t *testing.T) {
	t.Parallel()
	link := "https://example.com/wp-login.php?action=rp&key=AbC123xYz&login=ada%40example.com"
	for _, msg := range []string{
		"bad value " + link,
		`{"field_value":"https://example.com/wp-login.php?action=rp\u0026key=AbC123xYz\u0026login=ada%40example.com"}`,
		"value=https%3A%2F%2Fexample.com%2Fwp-login.php%3Faction%3Drp%26key%3DAbC123xYz",
		"key AbC123xYz is invalid",
	} {
		if got := scrubLink(msg, link); strings.Contains(got, "AbC123xYz") {
			t.Errorf("scrubLink(%q) = %q: the key is still there", msg, got)
		}
	}
	inner := errors.New("inner")
	if e := (&scrubbedError{msg: "m", err: inner}); !errors.Is(e, inner) {
		t.Error("a scrubbed error must unwrap to its cause, so retries still see it")
	}
}
