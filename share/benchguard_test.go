//go:build linux

package share

import (
	"log/slog"
	"testing"
)

func benchGuard(b *testing.B) *secretGuard {
	return newSecretGuard(nil, DefaultSecretDirs(), &refusalLog{log: slog.New(slog.DiscardHandler)})
}
