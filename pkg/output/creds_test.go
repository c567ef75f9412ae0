package output

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey is a service-account key made for the test, with its public half.
type testKey struct {
	JSON  []byte
	PEM   string
	Email string
	Pub   *rsa.PublicKey
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	email := "uploader@test-project.iam.gserviceaccount.com"
	js, err := json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": "test-project", "private_key_id": "abc123",
		"private_key": pemKey, "client_email": email, "client_id": "1",
		"token_uri": "https://oauth2.googleapis.com/token",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return testKey{JSON: js, PEM: pemKey, Email: email, Pub: &k.PublicKey}
}

func TestLoadCredentials(t *testing.T) {
	key := newTestKey(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	if err := os.WriteFile(keyFile, key.JSON, 0o600); err != nil {
		t.Fatal(err)
	}
	wrapped := base64.StdEncoding.EncodeToString(key.JSON)
	var folded strings.Builder // base64 -w76 style, as some secret stores keep it
	for i := 0; i < len(wrapped); i += 76 {
		folded.WriteString(wrapped[i:min(i+76, len(wrapped))] + "\n")
	}
	user := `{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}`
	noKey := strings.Replace(string(key.JSON), `"private_key"`, `"private_key_gone"`, 1)
	badKey := strings.Replace(string(key.JSON), "MII", "XXX", 1)

	tests := []struct {
		name     string
		src      CredentialSource
		wantType string
		canSign  bool
		adc      bool
		wantErr  string
	}{
		{name: "nothing: application default", src: CredentialSource{}, adc: true},
		{name: "key file", src: CredentialSource{File: keyFile}, wantType: "service_account", canSign: true},
		{name: "raw JSON value", src: CredentialSource{Value: string(key.JSON)}, wantType: "service_account", canSign: true},
		{name: "base64 value", src: CredentialSource{Value: wrapped}, wantType: "service_account", canSign: true},
		{name: "folded base64 value", src: CredentialSource{Value: folded.String()}, wantType: "service_account", canSign: true},
		{name: "url-safe unpadded base64", src: CredentialSource{Value: base64.RawURLEncoding.EncodeToString(key.JSON)}, wantType: "service_account", canSign: true},
		{name: "value wins over file", src: CredentialSource{Value: user, File: keyFile}, wantType: "authorized_user"},
		{name: "authorized user cannot sign", src: CredentialSource{Value: user}, wantType: "authorized_user"},
		{name: "garbage", src: CredentialSource{Value: "not a key at all!"}, wantErr: "neither JSON nor base64"},
		{name: "base64 of non-JSON", src: CredentialSource{Value: base64.StdEncoding.EncodeToString([]byte("hello"))}, wantErr: "neither JSON nor base64"},
		{name: "a path in the value", src: CredentialSource{Value: "/secrets/key.json"}, wantErr: "GOOGLE_APPLICATION_CREDENTIALS"},
		{name: "broken JSON", src: CredentialSource{Value: `{"type": "service_account", `}, wantErr: "not valid JSON"},
		{name: "no type", src: CredentialSource{Value: `{"client_email":"x"}`}, wantErr: `no "type"`},
		{name: "unknown type", src: CredentialSource{Value: `{"type":"api_key"}`}, wantErr: "unsupported credential type"},
		{name: "service account without key", src: CredentialSource{Value: noKey}, wantErr: "lacks client_email or private_key"},
		{name: "corrupt private key", src: CredentialSource{Value: badKey}, wantErr: "not a usable RSA key"},
		{name: "missing file", src: CredentialSource{File: filepath.Join(dir, "nope.json")}, wantErr: "cannot read the key file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadCredentials(tc.src)
			if tc.wantErr != "" {
				var ce *CredentialsError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want a *CredentialsError with %q", err, tc.wantErr)
				}
				// Whatever went wrong, no part of a key may reach a message.
				for _, secret := range []string{key.PEM[40:80], wrapped[100:140], "hello"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error leaks key material: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.IsADC() != tc.adc || c.Type != tc.wantType || c.CanSign() != tc.canSign {
				t.Fatalf("got type %q adc %v canSign %v", c.Type, c.IsADC(), c.CanSign())
			}
			if tc.adc {
				if len(c.ClientOptions()) != 0 {
					t.Error("ADC must add no client option")
				}
				return
			}
			if len(c.ClientOptions()) != 1 {
				t.Error("want one credentials option")
			}
			if s := c.String(); strings.Contains(s, "PRIVATE") || strings.Contains(s, key.PEM[40:80]) {
				t.Errorf("String leaks the key: %s", s)
			}
			if tc.canSign && c.ClientEmail != key.Email {
				t.Errorf("client_email %q", c.ClientEmail)
			}
		})
	}
}
