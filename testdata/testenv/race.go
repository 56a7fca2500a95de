//go:build linux && race

package testenv

const raceEnabled = true
