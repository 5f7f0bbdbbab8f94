package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/weftnet/weft/plugin"
)

// ClockReading is one look at an etcd member's clock: the Date header of
// its HTTP answer (whole seconds, RFC 9110) and this host's time just
// before the request and just after the answer.
type ClockReading struct {
	Endpoint      string
	Before, After time.Time
	Server        time.Time
}

// Skew is the smallest difference between the server's clock and this
// host's that the reading allows (server minus local): the server's time
// lies in [Server, Server+1s) and was read somewhere between Before and
// After, so a skew within that window reads as 0.
func (c ClockReading) Skew() time.Duration {
	low := c.Server.Sub(c.After)
	high := c.Server.Add(time.Second).Sub(c.Before)
	switch {
	case low > 0:
		return low
	case high < 0:
		return high
	}
	return 0
}

// Clock skew thresholds. Nothing in weft's data path reads the wall clock
// across hosts: etcd counts a lease's TTL on its own leader and weft renews
// it by elapsed time, so a skewed clock does not expire leases. What a
// skewed clock does break is TLS (a certificate not yet or no longer valid
// by this host's clock, the handshake with etcd fails) and the reading of
// logs and `weft status` times side by side across hosts.
const (
	skewWarn = 5 * time.Second
	skewFail = 5 * time.Minute
)

func checkClock(ctx context.Context, env Env, st plugin.Settings, clusterOK bool) Result {
	r := Result{Name: "cluster clock"}
	switch {
	case !st.Etcd.Enabled():
		r.Verdict, r.Detail = Skip, "WEFT_STORE is not set: no cluster store"
		return r
	case !clusterOK:
		r.Verdict, r.Detail = Skip, "the cluster store cannot be reached (above)"
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := env.ClusterClock(cctx, st.Etcd)
	if err != nil {
		r.Verdict, r.Detail = Warn, "could not read etcd's clock: "+err.Error()
		r.Fix = "etcd answers weft but not a plain HTTPS GET of /version: check that its client URL serves HTTP (it does by default), or compare the clocks by hand (date on both hosts)"
		return r
	}
	skew := c.Skew()
	abs := skew.Abs()
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	tls := st.Etcd.CAFile != "" || st.Etcd.CertFile != ""
	const ntp = "run time synchronisation on this host and the etcd hosts (timedatectl set-ntp true, chrony or systemd-timesyncd) and check with chronyc tracking / timedatectl"
	switch {
	case abs == 0:
		r.Verdict, r.Detail = OK, fmt.Sprintf("etcd's clock at %s agrees with this host's to within a second", c.Endpoint)
	case abs >= skewFail && tls:
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("etcd's clock at %s is %s %s this host's: with TLS, certificates are checked against this host's clock, so a certificate issued or renewed within that window is refused (x509: certificate has expired or is not yet valid)", c.Endpoint, abs.Round(time.Second), dir)
		r.Fix = ntp
	case abs >= skewWarn:
		r.Verdict = Warn
		r.Detail = fmt.Sprintf("etcd's clock at %s is %s %s this host's; leases are not affected (etcd counts their TTL on its own clock), but log lines and weft status times do not line up across hosts", c.Endpoint, abs.Round(time.Second), dir)
		if tls {
			r.Detail += ", and TLS certificates are checked against this host's clock"
		}
		r.Fix = ntp
	default:
		r.Verdict, r.Detail = OK, fmt.Sprintf("etcd's clock at %s is within %s of this host's (%s %s)", c.Endpoint, skewWarn, abs.Round(time.Millisecond), dir)
	}
	return r
}
