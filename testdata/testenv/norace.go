//go:build linux && !race

package testenv

const raceEnabled = false
