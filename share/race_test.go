//go:build race

package share

// raceBuild: the test binary (and the dsftp it builds) runs the race
// detector, which multiplies memory use.
const raceBuild = true
