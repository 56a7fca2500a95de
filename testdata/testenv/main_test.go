//go:build linux

package testenv

import (
	"testing"
)

// TestMain removes the programs the tests built.
func TestMain(m *testing.M) { Main(m) }
