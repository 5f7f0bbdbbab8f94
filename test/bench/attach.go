//go:build bench

package main

import (
	"context"
	"fmt"
)

// attachResult holds `docker run --rm --network X image true` times in ms,
// one per round and variant (Samples[v][r] was taken in round r).
type attachResult struct {
	Rounds  int
	Warmup  int
	Samples map[string][]float64
}

// attachVariants: a weft network (weft driver and IPAM), a user-defined
// Docker bridge network (like a weft network it gets Docker's embedded DNS,
// so it is the fair baseline), and no network at all.
var attachVariants = []struct{ name, network string }{
	{"weft", "bench-aw"},
	{"docker bridge", "bench-ad"},
	{"none", "none"},
}

func benchAttach(ctx context.Context, h *dockerHost) (*attachResult, error) {
	rounds, warmup := 100, 3 // run to run, Docker's own added cost varies by ±25%: many rounds narrow the ratio's interval
	if cfg.quick {
		rounds, warmup = 5, 1
	}
	if _, err := h.D("network", "create", "-d", "weft", "--ipam-driver", "weft", "--subnet", "10.201.0.0/24", "bench-aw"); err != nil {
		return nil, err
	}
	defer func() { _, _ = h.D("network", "rm", "bench-aw") }()
	if _, err := h.D("network", "create", "-d", "bridge", "--subnet", "10.202.0.0/24", "bench-ad"); err != nil {
		return nil, err
	}
	defer func() { _, _ = h.D("network", "rm", "bench-ad") }()

	runOnce := func(network string) (float64, error) {
		d, err := h.timedDocker("run", "--rm", "--network", network, image, "true")
		return ms(d), err
	}
	for range warmup {
		for _, v := range attachVariants {
			if _, err := runOnce(v.network); err != nil {
				return nil, err
			}
		}
	}
	res := &attachResult{Rounds: rounds, Warmup: warmup, Samples: map[string][]float64{}}
	for _, v := range attachVariants {
		res.Samples[v.name] = make([]float64, rounds)
	}
	for r := range rounds {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Rotate the order each round so no variant always runs first (after
		// a pause) or last.
		for i := range attachVariants {
			v := attachVariants[(r+i)%len(attachVariants)]
			t, err := runOnce(v.network)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r, v.name, err)
			}
			res.Samples[v.name][r] = t
		}
		if (r+1)%10 == 0 {
			logf("attach: %d/%d rounds", r+1, rounds)
		}
	}
	return res, nil
}
