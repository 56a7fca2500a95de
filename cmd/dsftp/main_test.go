//go:build linux

package main

import (
	"github.com/dsftp/dsftp/testdata/testenv"
	"testing"
)

// TestMain removes the programs the tests built.
func TestMain(m *testing.M) { testenv.Main(m) }
