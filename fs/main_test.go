//go:build linux

package fs_test

import (
	"github.com/dsftp/dsftp/testdata/testenv"
	"testing"
)

// TestMain removes the programs the tests built.
func TestMain(m *testing.M) { testenv.Main(m) }
