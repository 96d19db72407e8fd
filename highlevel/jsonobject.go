package highlevel

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// objectMembers splits the JSON object data into its members' raw values,
// as json.Unmarshal into a map[string]json.RawMessage does, but with each
// value a slice of data rather than a copy, and without reflection: a
// webhook's body has a few dozen members, and decoding them into a map
// that way was a tenth of the intake's CPU. A member named twice keeps its
// last value, as with json.Unmarshal. It reports false when data is not a
// valid JSON object (null included); json.Unmarshal then says why.
func objectMembers(data []byte) (map[string]json.RawMessage, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	// From here on data is known to be valid JSON, which the scan relies on.
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	m := make(map[string]json.RawMessage, 32)
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return m, true
	}
	for {
		end := stringEnd(data, i)
		name := memberName(data[i:end])
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1) // at the value
		vend := valueEnd(data, i)
		m[name] = data[i:vend:vend]
		i = skipSpace(data, vend) // at ',' or '}'
		if data[i] == '}' {
			return m, true
		}
		i = skipSpace(data, i+1) // at the next name
	}
}

// memberName is the text of the quoted JSON string raw.
func memberName(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	json.Unmarshal(raw, &s) // escapes, and invalid UTF-8 replaced as encoding/json does
	return s
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd is the index just past the JSON string starting at data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; ; j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// valueEnd is the index just past the JSON value starting at data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
		j++
	}
	return j
}
