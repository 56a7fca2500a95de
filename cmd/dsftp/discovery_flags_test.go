package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenSources(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv(envDiscordToken, "")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// No token anywhere: discovery is off, not an error.
	var f discoveryFlags
	if _, ok, err := f.token(log); ok || err != nil {
		t.Fatalf("no token: ok=%v err=%v", ok, err)
	}
	// An explicit file that does not exist is an error.
	f.tokenFile = filepath.Join(dir, "missing")
	if _, _, err := f.token(log); err == nil || !strings.Contains(err.Error(), envDiscordToken) {
		t.Fatalf("missing --token-file: %v", err)
	}
	// The default file, readable by others: used, with a warning.
	f.tokenFile = ""
	def := filepath.Join(dir, "dsftp", "discord-token")
	os.MkdirAll(filepath.Dir(def), 0o700)
	os.WriteFile(def, []byte("  secret-token\n"), 0o644)
	tok, ok, err := f.token(log)
	if err != nil || !ok || tok != "secret-token" {
		t.Fatalf("default file: %q %v %v", tok, ok, err)
	}
	if !strings.Contains(logs.String(), "chmod 600") {
		t.Errorf("no warning about a world-readable token file: %s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-token") {
		t.Error("the token was logged")
	}
	logs.Reset()
	os.Chmod(def, 0o600)
	if _, _, err := f.token(log); err != nil || strings.Contains(logs.String(), "chmod") {
		t.Errorf("0600 file: %v, %s", err, logs.String())
	}
	// The environment wins over the file.
	t.Setenv(envDiscordToken, "from-env")
	if tok, _, _ := f.token(log); tok != "from-env" {
		t.Errorf("env token: %q", tok)
	}
	// An empty file is an error that says so.
	t.Setenv(envDiscordToken, "")
	os.WriteFile(def, nil, 0o600)
	if _, _, err := f.token(log); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}
