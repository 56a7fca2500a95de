package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of the structures derKey recognises.
var (
	oidPKCS7Data       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidPKCS7SignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidPBES2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPKCS12PBE       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1} // and its arcs
)

// pfxPDU is the outer structure of a PKCS#12 file (RFC 7292 §4).
type pfxPDU struct {
	Version  int
	AuthSafe struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
	}
	MacData asn1.RawValue `asn1:"optional"`
}

// privateKeyInfo is PKCS#8's key (RFC 5208 §5), whatever its algorithm;
// x509 parses only the algorithms Go implements.
type privateKeyInfo struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue `asn1:"optional,tag:0"`
	PublicKey  asn1.RawValue `asn1:"optional,tag:1"`
}

// encryptedPrivateKeyInfo is PKCS#8's encrypted key (RFC 5208 §6).
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// derKey reports why b, a whole file, is a private key or key bundle in
// DER: PKCS#8 (plain or encrypted), PKCS#1 RSA, SEC1 EC or PKCS#12. Only
// a file that is exactly one DER SEQUENCE is parsed, so other files cost
// a byte compare.
func derKey(b []byte) string {
	if len(b) < 2 || b[0] != 0x30 {
		return ""
	}
	s := cryptobyte.String(b)
	var seq cryptobyte.String
	if !s.ReadASN1Element(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return ""
	}
	if why := parsedKey(b); why != "" {
		return why
	}
	var pki privateKeyInfo
	if rest, err := asn1.Unmarshal(b, &pki); err == nil && len(rest) == 0 && len(pki.Algorithm.Algorithm) > 0 {
		return "private key (DER PKCS#8)"
	}
	var epki encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(b, &epki); err == nil && len(rest) == 0 && encryptionOID(epki.Algorithm.Algorithm) {
		return "encrypted private key (DER PKCS#8)"
	}
	var pfx pfxPDU
	if rest, err := asn1.Unmarshal(b, &pfx); err == nil && len(rest) == 0 && pfx.Version == 3 &&
		(pfx.AuthSafe.ContentType.Equal(oidPKCS7Data) || pfx.AuthSafe.ContentType.Equal(oidPKCS7SignedData)) {
		return "PKCS#12 key bundle"
	}
	return ""
}

// maxParsedKey bounds the files given to x509's key parsers: they check
// an RSA key's numbers, which for a crafted 64 KiB one took 0.5 s, and
// 11 ms at 9 KiB. An RSA key of 16384 bits is 9.4 KiB.
const maxParsedKey = 12 << 10

// parsedKey reports why b parses as a PKCS#8, PKCS#1 or SEC1 key, or "".
func parsedKey(b []byte) string {
	if len(b) > maxParsedKey {
		return ""
	}
	if _, err := x509.ParsePKCS8PrivateKey(b); err == nil {
		return "private key (DER PKCS#8)"
	}
	if _, err := x509.ParsePKCS1PrivateKey(b); err == nil {
		return "private key (DER PKCS#1)"
	}
	if _, err := x509.ParseECPrivateKey(b); err == nil {
		return "private key (DER SEC1 EC)"
	}
	return ""
}

// encryptionOID reports a password-based encryption scheme of PKCS#8.
func encryptionOID(oid asn1.ObjectIdentifier) bool {
	if oid.Equal(oidPBES2) {
		return true
	}
	return len(oid) == len(oidPKCS12PBE)+1 && oid[:len(oidPKCS12PBE)].Equal(oidPKCS12PBE)
}
