// Package doctor is `weft doctor`: checks of what weft needs from the host
// (kernel features, the iptables back-end dockerd uses, forwarding, a
// writable state directory, the cluster store) and of whether the kernel
// still holds what weft's state says it made, each failure printed with the
// command or setting that fixes it.
//
// The checks reuse what weft already has rather than a second copy of it:
// the back-end choice is dataplane/fw's ChooseBackend, the link names are
// the modes' (through status.AddLinkNames), and the firewall comparison is
// the running weft's own Check (plugin.CheckPath), the one its repairer
// runs every few seconds. Every effect on the host goes through Env, so the
// checks are tested on fakes; host.go is the real Env.
package doctor
