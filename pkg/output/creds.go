package output

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/api/option"
)

// CredentialSource says where GCS credentials come from. The caller reads
// the environment (GOOGLE_APPLICATION_CREDENTIALS, GCS_CREDENTIALS_JSON, ...)
// and passes the values; this package never reads it.
type CredentialSource struct {
	// File is a path to a key file (GOOGLE_APPLICATION_CREDENTIALS).
	File string
	// Value is the key itself, as JSON or base64 of the JSON: the form a
	// RunPod secret takes. It wins over File when both are set, because it is
	// the more specific of the two.
	Value string
}

// Credentials is a parsed Google credential configuration. The zero value
// (or nil) means Application Default Credentials, resolved by the client.
type Credentials struct {
	// Type is the JSON "type": service_account, authorized_user,
	// impersonated_service_account or external_account; "" for ADC.
	Type string
	// Origin says where the key came from, for messages: "file /path",
	// "env value", "application default credentials". Never key material.
	Origin      string
	ClientEmail string
	ProjectID   string

	json       []byte
	privateKey []byte // PEM, service accounts only
}

// CredentialsError is a credential configuration that cannot be used. Its
// message never contains key material.
type CredentialsError struct {
	Origin string
	Reason string
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("GCS credentials from %s: %s", e.Origin, e.Reason)
}

// LoadCredentials resolves a CredentialSource: the value if set, else the
// file if set, else Application Default Credentials.
func LoadCredentials(src CredentialSource) (*Credentials, error) {
	switch {
	case strings.TrimSpace(src.Value) != "":
		return ParseCredentialsValue(src.Value)
	case strings.TrimSpace(src.File) != "":
		return ReadCredentialsFile(strings.TrimSpace(src.File))
	}
	return &Credentials{Origin: "application default credentials"}, nil
}

// ReadCredentialsFile reads and checks a key file.
func ReadCredentialsFile(path string) (*Credentials, error) {
	origin := "file " + path
	data, err := os.ReadFile(path)
	if err != nil {
		reason := fmt.Sprintf("cannot read the key file (%v): set GOOGLE_APPLICATION_CREDENTIALS to a readable service-account key file", unwrapPathErr(err))
		return nil, &CredentialsError{Origin: origin, Reason: reason}
	}
	return parseCredentials(data, origin)
}

// ParseCredentialsValue reads a key passed as a value: raw JSON, or base64
// (standard or URL alphabet, padded or not, line breaks allowed) of it.
func ParseCredentialsValue(value string) (*Credentials, error) {
	const origin = "env value"
	v := strings.TrimSpace(value)
	if strings.HasPrefix(v, "{") {
		return parseCredentials([]byte(v), origin)
	}
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasSuffix(v, ".json") {
		return nil, &CredentialsError{Origin: origin, Reason: "the value looks like a file path, not a key: " +
			"set GOOGLE_APPLICATION_CREDENTIALS to the path instead, or put the key file's contents (or base64 of them) in the value"}
	}
	compact := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		data, err := enc.DecodeString(compact)
		if err != nil {
			continue
		}
		if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			break
		}
		return parseCredentials(bytes.TrimSpace(data), origin+" (base64)")
	}
	return nil, &CredentialsError{Origin: origin, Reason: "the value is neither JSON nor base64 of JSON: " +
		"paste the service-account key file's contents, or `base64 -w0 key.json` of them"}
}

// ParseCredentialsJSON checks a key given as JSON bytes.
func ParseCredentialsJSON(data []byte) (*Credentials, error) {
	return parseCredentials(data, "JSON")
}

func parseCredentials(data []byte, origin string) (*Credentials, error) {
	var f struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
		ProjectID   string `json:"project_id"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		// json errors can quote a byte of the input; report only the kind.
		reason := "not valid JSON"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			reason = fmt.Sprintf("not valid JSON (syntax error at byte %d)", se.Offset)
		}
		return nil, &CredentialsError{Origin: origin, Reason: reason + ": expected a Google service-account key file"}
	}
	c := &Credentials{Type: f.Type, Origin: origin, ClientEmail: f.ClientEmail, ProjectID: f.ProjectID, json: data}
	switch f.Type {
	case "service_account":
		if f.ClientEmail == "" || f.PrivateKey == "" {
			return nil, &CredentialsError{Origin: origin, Reason: "the service-account key lacks client_email or private_key: download a new JSON key for the service account"}
		}
		if err := checkRSAKey([]byte(f.PrivateKey)); err != nil {
			return nil, &CredentialsError{Origin: origin, Reason: "the private_key is not a usable RSA key (" + err.Error() + "): download a new JSON key"}
		}
		c.privateKey = []byte(f.PrivateKey)
	case "authorized_user", "impersonated_service_account", "external_account":
	case "":
		return nil, &CredentialsError{Origin: origin, Reason: `the JSON has no "type": expected a Google service-account key file`}
	default:
		return nil, &CredentialsError{Origin: origin, Reason: fmt.Sprintf("unsupported credential type %q: use a service-account key (type service_account)", f.Type)}
	}
	return c, nil
}

func checkRSAKey(pemData []byte) error {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return errors.New("not an RSA key")
		}
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return errors.New("unparseable key")
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// IsADC reports whether these are Application Default Credentials, left
// for the client to discover.
func (c *Credentials) IsADC() bool { return c == nil || len(c.json) == 0 }

// CanSign reports whether the credentials hold a private key, so V4 signed
// URLs can be made locally.
func (c *Credentials) CanSign() bool { return c != nil && len(c.privateKey) > 0 }

// String names the credentials without any secret.
func (c *Credentials) String() string {
	if c.IsADC() {
		return "application default credentials"
	}
	if c.ClientEmail != "" {
		return fmt.Sprintf("%s %s from %s", c.Type, c.ClientEmail, c.Origin)
	}
	return fmt.Sprintf("%s from %s", c.Type, c.Origin)
}

// ClientOptions are the options that make a storage client use these
// credentials; none for ADC. The credential type is pinned to the one we
// parsed, so a swapped file cannot smuggle in another kind of credential.
func (c *Credentials) ClientOptions() []option.ClientOption {
	if c.IsADC() {
		return nil
	}
	var t option.CredentialsType
	switch c.Type {
	case "service_account":
		t = option.ServiceAccount
	case "authorized_user":
		t = option.AuthorizedUser
	case "impersonated_service_account":
		t = option.ImpersonatedServiceAccount
	case "external_account":
		t = option.ExternalAccount
	}
	return []option.ClientOption{option.WithAuthCredentialsJSON(t, c.json)}
}
