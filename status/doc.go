// Package status is `weft status`: what weft serves on this host, read from
// the running plugin (plugin.StatusPath on its socket) or, when it is not
// running, from its state file opened read-only, and printed as tables or
// as JSON.
package status
