//go:build bench

package main

import (
	"math"
	"math/rand/v2"
	"slices"
)

// quantile of xs (not modified) with linear interpolation between order
// statistics (R type 7, what numpy calls "linear").
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantileSorted(s, q)
}

func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// estimate is a figure with its spread: a 90% bootstrap interval.
type estimate struct {
	V, Lo, Hi float64
}

func (e estimate) ok() bool { return !math.IsNaN(e.V) && !math.IsInf(e.V, 0) }

// bootstrapReps is the number of bootstrap resamples; the generator has a
// fixed seed so a report is reproducible from its raw samples.
const bootstrapReps = 2000

// bootstrap estimates stat over n rounds and its 90% percentile interval by
// resampling the rounds with replacement. Resampling whole rounds keeps the
// pairing the interleaving created: every resample holds, for each round it
// picks, the samples of every variant taken in that round.
func bootstrap(n int, stat func(idx []int) float64) estimate {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	e := estimate{V: stat(all)}
	if n < 2 {
		e.Lo, e.Hi = math.NaN(), math.NaN()
		return e
	}
	r := rand.New(rand.NewPCG(0x77656674, 0x62656e63))
	vals := make([]float64, 0, bootstrapReps)
	idx := make([]int, n)
	for range bootstrapReps {
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		if v := stat(idx); !math.IsNaN(v) && !math.IsInf(v, 0) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		e.Lo, e.Hi = math.NaN(), math.NaN()
		return e
	}
	slices.Sort(vals)
	e.Lo, e.Hi = quantileSorted(vals, 0.05), quantileSorted(vals, 0.95)
	return e
}

// pick returns xs[idx[0]], xs[idx[1]], ...
func pick(xs []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = xs[j]
	}
	return out
}

// fit is a least-squares line y = Slope*x + Intercept.
type fit struct {
	Slope, Intercept, R2 float64
	MaxResid             float64 // largest |y - fitted y|
}

func linfit(x, y []float64) fit {
	if len(x) < 2 {
		return fit{Slope: math.NaN(), Intercept: math.NaN(), R2: math.NaN()}
	}
	mx, my := mean(x), mean(y)
	var sxx, sxy, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	f := fit{}
	if sxx == 0 {
		return fit{Slope: math.NaN(), Intercept: my, R2: math.NaN()}
	}
	f.Slope = sxy / sxx
	f.Intercept = my - f.Slope*mx
	if syy == 0 {
		f.R2 = 1
	} else {
		f.R2 = sxy * sxy / (sxx * syy)
	}
	for i := range x {
		f.MaxResid = math.Max(f.MaxResid, math.Abs(y[i]-(f.Slope*x[i]+f.Intercept)))
	}
	return f
}
