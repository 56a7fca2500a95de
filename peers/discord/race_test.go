//go:build race

package discord

// raceEnabled slows the 100-peer simulation's clock: the race detector
// makes every signature check several times slower, and all 100 peers
// share this machine.
const raceEnabled = true
