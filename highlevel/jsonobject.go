package highlevel

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// member is one member of a JSON object: its name and its raw value, a
// slice of the object's data.
type member struct {
	name string
	raw  json.RawMessage
}

// members are a JSON object's members sorted by name, each name once.
type members []member

// get returns the raw value of the member name, nil when there is none.
func (ms members) get(name string) json.RawMessage {
	i, ok := slices.BinarySearchFunc(ms, name, func(m member, name string) int { return strings.Compare(m.name, name) })
	if !ok {
		return nil
	}
	return ms[i].raw
}

// objectMembers splits the JSON object data into its members' raw values,
// as json.Unmarshal into a map[string]json.RawMessage does, but with each
// value a slice of data rather than a copy, without reflection and without
// a map: a webhook's body has a few dozen members, and decoding them into
// a map that way was a tenth of the intake's CPU; building a map of the
// slices was still 2%, more than sorting them. A member named twice keeps
// its last value, as with json.Unmarshal. It reports false when data is
// not a valid JSON object (null included); json.Unmarshal then says why.
func objectMembers(data []byte) (members, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	return validObjectMembers(data)
}

// validObjectMembers is objectMembers for data known to be valid JSON
// (a value sliced out of a valid body), which the scan relies on.
func validObjectMembers(data []byte) (members, bool) {
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	ms := make(members, 0, 32)
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return ms, true
	}
	for {
		end := stringEnd(data, i)
		name := memberName(data[i:end])
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1) // at the value
		vend := valueEnd(data, i)
		ms = append(ms, member{name, data[i:vend:vend]})
		i = skipSpace(data, vend) // at ',' or '}'
		if data[i] == '}' {
			break
		}
		i = skipSpace(data, i+1) // at the next name
	}
	// Stable, so that of a name's members the last one sent comes last
	// and is the one kept.
	slices.SortStableFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
	kept := ms[:0]
	for j, m := range ms {
		if j+1 < len(ms) && ms[j+1].name == m.name {
			continue
		}
		kept = append(kept, m)
	}
	return kept, true
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
