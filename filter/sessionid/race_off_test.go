//go:build !race

package sessionid

const raceEnabled = false
