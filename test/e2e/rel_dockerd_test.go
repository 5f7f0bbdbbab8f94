//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/test/testhost"
)

// Reliability: dockerd restarted or killed around weft.

// TestDockerdRestartWhileWeftDown: weft is down while dockerd restarts with
// containers running, and comes back as dockerd starts again (a supervisor
// starts both). dockerd stops its containers without weft hearing of it,
// starts in its normal time (measured first, with weft up throughout), and
// a container whose --ip weft held starts again with that address.
//
// (A legacy plugin that stays down during all of dockerd's start delays it:
// dockerd 20.10 looks the plugin up for each network with weft's IPAM and
// each endpoint it could not delete, retrying each lookup for about 15 s.
// That is dockerd's, not weft's; with the managed plugin dockerd starts
// weft itself.)
func TestDockerdRestartWhileWeftDown(t *testing.T) {
	h := newHost(t, "dwdown", hostOptions{weftEnv: []string{"WEFT_RESERVATION_GRACE=" + faultGrace}})
	const ip = "10.153.0.10"
	h.CreateNetwork(t, "wd-net", "--subnet", "10.153.0.0/24")
	h.Run(t, "wd-a", "--network", "wd-net", "--ip", ip)
	h.Run(t, "wd-b", "--network", "wd-net")
	h.AssertPing(t, "wd-b", ip)

	// dockerd's normal restart, weft up (the containers stop with it).
	stopUp := h.timedStopDockerd(t)
	t0 := time.Now()
	h.StartDockerd(t)
	startUp := time.Since(t0)
	t.Logf("reliability: dockerd restart with weft up: stop %s, start %s", stopUp.Round(time.Millisecond), startUp.Round(time.Millisecond))
	h.Docker(t, "start", "wd-a", "wd-b")
	h.AssertPing(t, "wd-b", ip)

	// Again, weft down from before the stop until dockerd is started.
	h.KillWeft(t)
	stopDown := h.timedStopDockerd(t)
	t0 = time.Now()
	if err := h.spawnDockerd(); err != nil {
		t.Fatal(err)
	}
	h.StartWeft(t)
	if err := h.waitDockerd(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	startDown := time.Since(t0)
	t.Logf("reliability: dockerd restart with weft down until dockerd started: stop %s, start %s", stopDown.Round(time.Millisecond), startDown.Round(time.Millisecond))
	// What this guards against is dockerd stalling on plugin lookups
	// (about 15 s each, see above), not speed: weft's own start-up
	// (reconciling its state) is in startDown and takes seconds on a
	// loaded machine, so the limit stays below one stalled lookup but well
	// above a normal start.
	if limit := 2*startUp + 12*time.Second; startDown > limit {
		t.Errorf("dockerd took %s to start with weft coming back at its start, more than %s (with weft up it took %s)", startDown.Round(time.Millisecond), limit, startUp.Round(time.Millisecond))
	}
	t0 = time.Now()
	h.Docker(t, "start", "wd-a", "wd-b")
	t.Logf("reliability: the --ip %s container started again in %s", ip, time.Since(t0).Round(time.Millisecond))
	if got := h.ContainerIP(t, "wd-a", "wd-net").String(); got != ip {
		t.Errorf("wd-a came back with %s, want its --ip %s", got, ip)
	}
	h.AssertPing(t, "wd-b", ip)

	h.Docker(t, "rm", "-f", "wd-a", "wd-b")
	h.Docker(t, "network", "rm", "wd-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// timedStopDockerd stops dockerd (SIGTERM) and returns how long it took.
// Stopping containers while weft is down takes dockerd a while (it retries
// each call to weft), so the limit is generous.
func (h *Host) timedStopDockerd(t testing.TB) time.Duration {
	t.Helper()
	t0 := time.Now()
	if err := h.Dockerd.SignalAndWait(3 * time.Minute); err != nil {
		t.Fatalf("stopping dockerd: %v", err)
	}
	return time.Since(t0)
}

// TestDockerdKillLiveRestore: with live-restore, dockerd is SIGKILLed and
// started again while a container pings another on a weft network, ten
// times a second: not one echo request goes unanswered. Afterwards the
// containers are removed through the restarted dockerd and nothing is left.
// (Without live-restore, TestDockerdKillNoLeak.)
func TestDockerdKillLiveRestore(t *testing.T) {
	h := newHost(t, "dlive", hostOptions{liveRestore: true})
	h.CreateNetwork(t, "lr-net", "--subnet", "10.154.0.0/24")
	h.Run(t, "lr-target", "--network", "lr-net")
	target := h.ContainerIP(t, "lr-target", "lr-net")
	pinger := h.startPinger(t, "lr-ping", "lr-net", target.String())
	pinger.waitReplies(t, 5)

	t0 := time.Now()
	h.KillDockerd(t)
	h.StartDockerd(t)
	down := time.Since(t0)
	if out := h.Docker(t, "inspect", "-f", "{{.State.Running}}", "lr-target"); out != "true" {
		t.Fatalf("lr-target is not running after dockerd's restart under live-restore (running=%s)", out)
	}
	// Replies for a while after dockerd is back, then count.
	after := pinger.waitReplies(t, 0)
	sent, lost := pinger.waitReplies(t, after.max+20).summary()
	if lost != nil {
		t.Errorf("dockerd SIGKILLed and restarted under live-restore: %d of %d echo requests between two containers were not answered (seq %v)", len(lost), sent, lost)
	}
	t.Logf("reliability: live-restore: dockerd SIGKILLed and back in %s; ping between two containers every 100 ms: %d sent, %d lost", down.Round(time.Millisecond), sent, len(lost))

	// A new container works, and everything goes.
	h.Run(t, "lr-new", "--network", "lr-net")
	h.AssertPing(t, "lr-new", target.String())
	h.Docker(t, "rm", "-f", "lr-ping", "lr-target", "lr-new")
	h.Docker(t, "network", "rm", "lr-net")
	h.AssertClean(t)
	h.WeftAlive(t)
}

// pinger is a container that pings one address ten times a second for its
// whole life, into /tmp/ping.log inside it: its echo replies survive dockerd
// going away (only the container's processes are needed).
type pinger struct {
	h    *Host
	name string
}

func (h *Host) startPinger(t testing.TB, name, net, target string) *pinger {
	t.Helper()
	h.Docker(t, "run", "-d", "--name", name, "--stop-timeout", "1", "--network", net, testImage,
		"sh", "-c", "exec ping -i 0.1 "+target+" >/tmp/ping.log 2>&1")
	h.cleanupContainer(t, name)
	return &pinger{h: h, name: name}
}

// pingLog is what a pinger's log says so far.
type pingLog struct {
	seqs []int // sequence numbers answered, sorted
	max  int   // highest answered, -1 if none
}

var pingSeqRE = regexp.MustCompile(`seq=(\d+) `)

func (p *pinger) read() (pingLog, error) {
	out, err := p.h.Exec(p.name, "cat", "/tmp/ping.log")
	if err != nil {
		return pingLog{}, err
	}
	l := pingLog{max: -1}
	for _, m := range pingSeqRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		l.seqs = append(l.seqs, n)
	}
	slices.Sort(l.seqs)
	l.seqs = slices.Compact(l.seqs)
	if len(l.seqs) > 0 {
		l.max = l.seqs[len(l.seqs)-1]
	}
	return l, nil
}

// waitReplies waits until the reply with sequence number seq (or a later
// one) is in the log, and returns the log.
func (p *pinger) waitReplies(t testing.TB, seq int) pingLog {
	t.Helper()
	var l pingLog
	err := testhost.Poll(30*time.Second, func() error {
		var err error
		if l, err = p.read(); err != nil {
			return err
		}
		if l.max < seq {
			return fmt.Errorf("ping from %s answered up to seq %d, waiting for %d", p.name, l.max, seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// summary returns how many requests were sent up to the last answered one
// and which of them got no answer.
func (l pingLog) summary() (sent int, lost []int) {
	have := map[int]bool{}
	for _, s := range l.seqs {
		have[s] = true
	}
	for s := 0; s <= l.max; s++ {
		if !have[s] {
			lost = append(lost, s)
		}
	}
	return l.max + 1, lost
}
