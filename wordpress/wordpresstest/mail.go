package wordpresstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"
)

// Mail is one mail WordPress sent, as the test site's mail catcher recorded it after the
// wp_mail filter (so with every customisation the site applies).
type Mail struct {
	// To holds the recipients as WordPress gave them, usually bare addresses.
	To      []string  `json:"to"`
	Subject string    `json:"subject"`
	Message string    `json:"message"`
	Headers []string  `json:"headers"` // "Name: value" lines, as passed to wp_mail
	Time    time.Time `json:"time"`    // when it was caught (UTC)
}

// mailPoll is how often WaitMail looks at the mail log.
const mailPoll = 25 * time.Millisecond

// Mails returns every mail the site has sent so far, oldest first. The log is shared by
// every test using the site: filter by recipient (see UniqueEmail, WaitMail).
func (s *Site) Mails(t testing.TB) []Mail {
	t.Helper()
	mails, err := s.readMails()
	if err != nil {
		t.Fatalf("wordpresstest: read %s: %v", s.MailLog, err)
	}
	return mails
}

// WaitMail waits up to timeout for a mail to the address to (compared ignoring case) and
// returns the first one; it fails t when none comes.
func (s *Site) WaitMail(t testing.TB, to string, timeout time.Duration) Mail {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mails, err := s.readMails()
		if err != nil {
			t.Fatalf("wordpresstest: read %s: %v", s.MailLog, err)
		}
		for _, m := range mails {
			if m.sentTo(to) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("wordpresstest: no mail to %s within %v (%d mails caught in all)", to, timeout, len(mails))
		}
		time.Sleep(mailPoll)
	}
}

// readMails parses the mail log; a last line still being written is left for next time.
func (s *Site) readMails() ([]Mail, error) {
	data, err := os.ReadFile(s.MailLog)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var mails []Mail
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m Mail
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, err
		}
		mails = append(mails, m)
	}
	return mails, nil
}

// sentTo reports whether addr is one of the recipients, which may be "Name <addr>".
func (m Mail) sentTo(addr string) bool {
	for _, to := range m.To {
		if a, err := mail.ParseAddress(to); err == nil {
			to = a.Address
		}
		if strings.EqualFold(strings.TrimSpace(to), strings.TrimSpace(addr)) {
			return true
		}
	}
	return false
}

// UniqueEmail returns an address no other test or run uses, lower-case, made from the
// test's name: "metaroundtrip+3f9a0c1d2e4b@example.test". WordPress accepts it (.test is
// reserved, so nothing can ever be delivered there).
func UniqueEmail(t testing.TB) string {
	t.Helper()
	var name strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			name.WriteRune(r)
		}
		if name.Len() == 24 {
			break
		}
	}
	if name.Len() == 0 {
		name.WriteString("user")
	}
	random := make([]byte, 6)
	if _, err := rand.Read(random); err != nil {
		t.Fatalf("wordpresstest: UniqueEmail: %v", err)
	}
	return name.String() + "+" + hex.EncodeToString(random) + "@example.test"
}
