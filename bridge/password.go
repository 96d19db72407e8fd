package bridge

import (
	"crypto/rand"
	"math/big"
)

// passwordAlphabet leaves out characters that are easy to misread or that
// break when a password is pasted into an email template or a URL.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#%*-_"

// passwordLength gives about 119 bits of entropy with passwordAlphabet.
const passwordLength = 20

// generatePassword returns a random password from crypto/rand.
func generatePassword() string {
	b := make([]byte, passwordLength)
	limit := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic("crypto/rand failed: " + err.Error()) // never on a supported OS
		}
		b[i] = passwordAlphabet[n.Int64()]
	}
	return string(b)
}
