package highlevel

import (
	"encoding/json"
	"maps"
	"testing"
)

// objectMembers must read every body as json.Unmarshal into a
// map[string]json.RawMessage does (FuzzParseWorkflowWebhook checks the
// same on arbitrary input).
func TestObjectMembersAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{}`,
		` { } `,
		"\t{\"a\" :\n1 , \"b\":\"x\"}\r\n",
		`{"a":"x","a":"y"}`,
		`{"a\"b":1,"\u00e9":2,"\\":3}`,
		"{\"bad\xff\":1}",
		`{"s":"a,}]\"{[b","n":-1.5e3,"t":true,"f":false,"z":null}`,
		`{"o":{"p":[1,{"q":"}"}],"r":{}},"l":[[],[[]],"]"]}`,
		`{"deep":[{"a":[{"b":[{"c":"\\"}]}]}]}`,
	} {
		want := map[string]json.RawMessage{}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		ms, ok := objectMembers([]byte(body))
		got, sorted := membersMap(ms)
		if !ok || !sorted || !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Errorf("%q: objectMembers = %q, %v; encoding/json %q", body, got, ok, want)
		}
	}
	for _, body := range []string{``, ` `, `null`, `[]`, `"{}"`, `1`, `{`, `{"a":1`, `{"a":1}x`, `{"a":1,}`, `{a:1}`, `{"a":1}{}`} {
		if got, ok := objectMembers([]byte(body)); ok || got != nil {
			t.Errorf("%q: objectMembers = %q, %v; want nil, false", body, got, ok)
		}
	}
}

func BenchmarkObjectMembers(b *testing.B) {
	body := []byte(`{"contact_id":"abc123","first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","tags":"a, b, c","location":{"id":"loc1","name":"L"},"workflow":{"id":"w1","name":"W"},"customData":{"k":"v"},"Favourite colour":"blue"}`)
	b.Run("objectMembers", func(b *testing.B) {
		for b.Loop() {
			objectMembers(body)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var m map[string]json.RawMessage
			json.Unmarshal(body, &m)
		}
	})
}
