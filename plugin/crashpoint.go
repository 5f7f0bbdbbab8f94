//go:build !weftfault

package plugin

// crashPoint marks a place inside a mutating call where the reliability suite
// kills weft (see crashpoint_weftfault.go). Release builds compile it to
// nothing.
func crashPoint(string) {}
