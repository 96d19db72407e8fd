package httpapi_test

import (
	"testing"

	"github.com/hlbridge/hlbridge/bridge/httpapi"
)

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ raw, want string }{
		{"", ""},
		{"wpf_action=add&access_key=s3cret&contact_id=abc", "wpf_action=add&access_key=REDACTED&contact_id=abc"},
		{"Access_Key=a&access_key=b", "Access_Key=REDACTED&access_key=REDACTED"},
		{"access%5Fkey=s3cret", "access_key=REDACTED"},
		{"password=a+b&sig=x&api_token=y&n=1", "password=REDACTED&sig=REDACTED&api_token=REDACTED&n=1"},
		{"access_key", "access_key=REDACTED"},
		{"a=1&&b=2", "a=1&b=2"},
		{"a=%zz&access_key=s3cret", "(unparsable query)"},
		{"access_key=s3cret;a=1", "(unparsable query)"},
	} {
		if got := httpapi.RedactQuery(c.raw); got != c.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
}
