//go:build !race

package share

const raceBuild = false
