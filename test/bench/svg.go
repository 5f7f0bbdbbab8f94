//go:build bench

package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The plots are written as SVG by hand-rolled code: no plotting library, no
// Python, so the harness needs nothing beyond Go and the docs are
// regenerated bit for bit from the measurements.

const (
	svgH                      = 380
	marginL, marginT, marginB = 78, 44, 56
	plotW                     = 600 // width of the plot area
)

// layout is the horizontal geometry: the legend sits right of the plot.
type layout struct {
	marginR int
	width   int
}

func newLayout(names []string) layout {
	w := 0
	for _, n := range names {
		w = max(w, len([]rune(n)))
	}
	l := layout{marginR: 24}
	if w > 0 {
		l.marginR = 44 + int(float64(w)*6.8)
	}
	l.width = marginL + plotW + l.marginR
	return l
}

// colours by variant, so weft looks the same in every plot.
var palette = map[string]string{
	"weft":          "#1f5fbf",
	"docker bridge": "#e07800",
	"none":          "#7a7a7a",
	"bare veth":     "#2e9e44",
	"bare bridge":   "#9bc46b",
}

var spare = []string{"#8e44ad", "#c0392b", "#16a085", "#7f8c8d"}

func colour(name string, i int) string {
	for k, c := range palette {
		if strings.HasPrefix(name, k) {
			return c
		}
	}
	return spare[i%len(spare)]
}

// series is one line or point set of an xyChart.
type series struct {
	name   string
	xs, ys []float64
	lo, hi []float64 // optional vertical error bars
	lines  bool      // connect the points
	points bool      // draw the points
	dashed bool
	small  bool // small translucent points (for many samples)
	colour string
}

// tick is an axis label at a position.
type tick struct {
	at    float64
	label string
}

type xyChart struct {
	title, xlabel, ylabel string
	logX                  bool
	xTicks                []tick // overrides the automatic ticks
	yFrom0                bool
	series                []series
	note                  string // small text under the title
}

type scale struct {
	lo, hi, p0, p1 float64
	log            bool
}

func (s scale) at(v float64) float64 {
	if s.log {
		v, s.lo, s.hi = math.Log10(v), math.Log10(s.lo), math.Log10(s.hi)
	}
	if s.hi == s.lo {
		return (s.p0 + s.p1) / 2
	}
	return s.p0 + (v-s.lo)/(s.hi-s.lo)*(s.p1-s.p0)
}

// niceTicks returns round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	first, last := math.Floor(lo/step+1e-9), math.Ceil(hi/step-1e-9)
	for k := first; k <= last; k++ {
		out = append(out, k*step)
	}
	return out
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	case a >= 1:
		return strconv.FormatFloat(v, 'g', 4, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

type svgDoc struct {
	b strings.Builder
	layout
}

func (d *svgDoc) f(format string, a ...any) { fmt.Fprintf(&d.b, format, a...) }

func esc(s string) string { return html.EscapeString(s) }

func (d *svgDoc) header(title, note string) {
	d.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`+"\n", d.width, svgH, d.width, svgH)
	d.f(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	d.f(`<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, esc(title))
	if note != "" {
		d.f(`<text x="%d" y="36" font-size="11" fill="#555">%s</text>`+"\n", marginL, esc(note))
	}
}

func (d *svgDoc) axes(xs, ys scale, xt, yt []tick, xlabel, ylabel string) {
	for _, t := range yt {
		y := ys.at(t.at)
		d.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", marginL, marginL+plotW, y, y)
		d.f(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginL-6, y, esc(t.label))
	}
	for _, t := range xt {
		x := xs.at(t.at)
		d.f(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999"/>`+"\n", x, x, svgH-marginB, svgH-marginB+5)
		d.f(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, svgH-marginB+18, esc(t.label))
	}
	d.f(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", marginL, marginL+plotW, svgH-marginB, svgH-marginB)
	d.f(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", marginL, marginL, marginT, svgH-marginB)
	d.f(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+plotW/2, svgH-14, esc(xlabel))
	d.f(`<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (marginT+svgH-marginB)/2, esc(ylabel))
}

func (d *svgDoc) legend(names, colours []string, dashed []bool) {
	x := float64(marginL + plotW + 16)
	for i, n := range names {
		y := float64(marginT + 14 + 18*i)
		dash := ""
		if dashed[i] {
			dash = ` stroke-dasharray="5 3"`
		}
		d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", x, x+20, y-4, y-4, colours[i], dash)
		d.f(`<text x="%.1f" y="%.1f">%s</text>`+"\n", x+26, y, esc(n))
	}
}

func (c xyChart) svg() string {
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for i := range s.xs {
			xlo, xhi = math.Min(xlo, s.xs[i]), math.Max(xhi, s.xs[i])
			ylo, yhi = math.Min(ylo, s.ys[i]), math.Max(yhi, s.ys[i])
			if s.hi != nil {
				yhi = math.Max(yhi, s.hi[i])
				ylo = math.Min(ylo, s.lo[i])
			}
		}
	}
	if math.IsInf(xlo, 0) {
		xlo, xhi, ylo, yhi = 0, 1, 0, 1
	}
	if c.yFrom0 && ylo > 0 {
		ylo = 0
	}
	yt := niceTicks(ylo, yhi, 5)
	ylo, yhi = math.Min(ylo, yt[0]), math.Max(yhi, yt[len(yt)-1])
	var xt []tick
	xs := scale{lo: xlo, hi: xhi, p0: marginL + 12, p1: marginL + plotW - 12, log: c.logX}
	switch {
	case c.xTicks != nil:
		xt = c.xTicks
		for _, t := range xt {
			xs.lo, xs.hi = math.Min(xs.lo, t.at), math.Max(xs.hi, t.at)
		}
		if !c.logX {
			pad := (xs.hi - xs.lo) * 0.08
			xs.lo, xs.hi = xs.lo-pad, xs.hi+pad
		}
	case c.logX:
		for p := math.Pow(10, math.Floor(math.Log10(xlo))); p <= xhi*1.0001; p *= 10 {
			xt = append(xt, tick{p, fmtNum(p)})
		}
	default:
		for _, v := range niceTicks(xlo, xhi, 8) {
			if v >= xlo-1e-9 && v <= xhi+1e-9 {
				xt = append(xt, tick{v, fmtNum(v)})
			}
		}
	}
	ys := scale{lo: ylo, hi: yhi, p0: svgH - marginB, p1: marginT + 6}
	var ytk []tick
	for _, v := range yt {
		ytk = append(ytk, tick{v, fmtNum(v)})
	}
	var d svgDoc
	var legendNames []string
	for _, s := range c.series {
		if s.name != "" {
			legendNames = append(legendNames, s.name)
		}
	}
	d.layout = newLayout(legendNames)
	d.header(c.title, c.note)
	d.axes(xs, ys, xt, ytk, c.xlabel, c.ylabel)
	var names, cols []string
	var dashes []bool
	for i, s := range c.series {
		col := s.colour
		if col == "" {
			col = colour(s.name, i)
		}
		if s.lines && len(s.xs) > 1 {
			var pts []string
			for j := range s.xs {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs.at(s.xs[j]), ys.at(s.ys[j])))
			}
			dash := ""
			if s.dashed {
				dash = ` stroke-dasharray="6 4"`
			}
			d.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), col, dash)
		}
		for j := range s.xs {
			x, y := xs.at(s.xs[j]), ys.at(s.ys[j])
			if s.hi != nil {
				d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x, x, ys.at(s.lo[j]), ys.at(s.hi[j]), col)
				for _, v := range []float64{s.lo[j], s.hi[j]} {
					d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x-4, x+4, ys.at(v), ys.at(v), col)
				}
			}
			switch {
			case s.small:
				d.f(`<circle cx="%.1f" cy="%.1f" r="2" fill="%s" fill-opacity="0.45"/>`+"\n", x, y, col)
			case s.points:
				d.f(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x, y, col)
			}
		}
		if s.name != "" {
			names, cols, dashes = append(names, s.name), append(cols, col), append(dashes, s.dashed)
		}
	}
	d.legend(names, cols, dashes)
	d.f("</svg>\n")
	return d.b.String()
}

// barChart draws groups of bars (one bar per series in each group) with
// optional error bars.
type barChart struct {
	title, ylabel, note string
	groups              []string
	series              []barSeries
}

type barSeries struct {
	name   string
	vals   []float64 // one per group; NaN = no bar
	lo, hi []float64 // optional
}

func (c barChart) svg() string {
	yhi := 0.0
	for _, s := range c.series {
		for i, v := range s.vals {
			if !math.IsNaN(v) {
				yhi = math.Max(yhi, v)
			}
			if s.hi != nil && !math.IsNaN(s.hi[i]) {
				yhi = math.Max(yhi, s.hi[i])
			}
		}
	}
	yt := niceTicks(0, yhi*1.05, 5)
	ys := scale{lo: 0, hi: yt[len(yt)-1], p0: svgH - marginB, p1: marginT + 6}
	var ytk []tick
	for _, v := range yt {
		ytk = append(ytk, tick{v, fmtNum(v)})
	}
	var d svgDoc
	var legendNames []string
	if len(c.series) > 1 {
		for _, s := range c.series {
			legendNames = append(legendNames, s.name)
		}
	}
	d.layout = newLayout(legendNames)
	d.header(c.title, c.note)
	gw := float64(plotW) / float64(len(c.groups))
	bw := gw * 0.7 / float64(len(c.series))
	var xt []tick
	xs := scale{lo: 0, hi: plotW, p0: marginL, p1: marginL + plotW}
	for g, name := range c.groups {
		xt = append(xt, tick{gw*float64(g) + gw/2, name})
	}
	d.axes(xs, ys, xt, ytk, "", c.ylabel)
	var names, cols []string
	var dashes []bool
	for si, s := range c.series {
		col := colour(s.name, si)
		for g, v := range s.vals {
			if math.IsNaN(v) {
				continue
			}
			if len(c.series) == 1 {
				col = colour(c.groups[g], g)
			}
			x := float64(marginL) + gw*float64(g) + gw*0.15 + bw*float64(si)
			y := ys.at(v)
			d.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, bw-2, ys.at(0)-y, col)
			top := y
			if s.hi != nil && !math.IsNaN(s.hi[g]) {
				top = math.Min(top, ys.at(s.hi[g]))
			}
			d.f(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", x+bw/2-1, top-5, esc(fmtNum(v)))
			if s.hi != nil && !math.IsNaN(s.hi[g]) {
				cx := x + bw/2 - 1
				d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222" stroke-width="1.3"/>`+"\n", cx, cx, ys.at(s.lo[g]), ys.at(s.hi[g]))
				for _, e := range []float64{s.lo[g], s.hi[g]} {
					d.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222" stroke-width="1.3"/>`+"\n", cx-4, cx+4, ys.at(e), ys.at(e))
				}
			}
		}
		if len(c.series) > 1 {
			names, cols, dashes = append(names, s.name), append(cols, col), append(dashes, false)
		}
	}
	d.legend(names, cols, dashes)
	d.f("</svg>\n")
	return d.b.String()
}
