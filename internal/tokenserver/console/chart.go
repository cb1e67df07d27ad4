package console

import (
	"bytes"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// Chart is a bar chart drawn on the server as SVG: days (or any labels)
// along the x axis, one bar per series side by side within a label's
// slot. Every bar carries a <title> ("2026-12-01: 12 pulls") that screen
// readers and mouse hover show, the chart a title and a description; the
// figures are also in the page as text, so nothing depends on the picture.
// Colours come from the stylesheet by class (chart-pull, chart-check, …):
// the CSP allows no inline style.
type Chart struct {
	// Title names the chart (its <title>).
	Title string
	// Labels are the x axis slots, e.g. days YYYY-MM-DD.
	Labels []string
	Series []Series
}

// Series is one row of values, a value per label.
type Series struct {
	// Name is the series' word in the bar titles and the legend ("pulls").
	Name string
	// Class is the CSS class of its bars ("chart-pull").
	Class  string
	Values []int64
}

// The chart's geometry, in SVG user units; the SVG scales to its box.
const (
	chartWidth  = 720
	chartHeight = 240
	chartLeft   = 44 // room for the y axis labels
	chartBottom = 24 // room for the x axis labels
	chartTop    = 8
)

// bar is one drawn bar.
type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// tick is a label on an axis.
type tick struct {
	X, Y  float64
	Label string
}

type chartData struct {
	ID          string
	Title       string
	Description string
	Width       int
	Height      int
	Bars        []bar
	YTicks      []tick
	XTicks      []tick
	Legend      []Series
	Left, Base  float64
	Right       float64
	Empty       bool
}

var chartTemplate = template.Must(template.New("chart").Parse(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-labelledby="{{.ID}}-title {{.ID}}-desc" preserveAspectRatio="xMidYMid meet">
<title id="{{.ID}}-title">{{.Title}}</title>
<desc id="{{.ID}}-desc">{{.Description}}</desc>
<line class="chart-axis" x1="{{.Left}}" y1="{{.Base}}" x2="{{.Right}}" y2="{{.Base}}"/>
{{range .YTicks}}<text class="chart-label" x="{{.X}}" y="{{.Y}}" text-anchor="end">{{.Label}}</text>
<line class="chart-grid" x1="{{$.Left}}" y1="{{.Y}}" x2="{{$.Right}}" y2="{{.Y}}"/>
{{end}}{{range .XTicks}}<text class="chart-label" x="{{.X}}" y="{{.Y}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Bars}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Title}}</title></rect>
{{end}}{{if .Empty}}<text class="chart-label" x="{{.Right}}" y="{{.Base}}" dy="-8" text-anchor="end">nothing yet</text>
{{end}}</svg>`))

// SVG draws the chart. The result is safe to put in a page: every text of
// it is escaped by html/template.
func (c Chart) SVG() template.HTML {
	d := c.layout()
	var b bytes.Buffer
	if err := chartTemplate.Execute(&b, d); err != nil {
		// Only a bug of the template gets here.
		return template.HTML("<!-- chart: " + template.HTMLEscapeString(err.Error()) + " -->")
	}
	return template.HTML(b.String()) //nolint:gosec // escaped by html/template above
}

// layout computes the bars and ticks.
func (c Chart) layout() chartData {
	d := chartData{
		ID: chartID(c.Title), Title: c.Title, Width: chartWidth, Height: chartHeight, Legend: c.Series,
		Left: chartLeft, Right: chartWidth - 4, Base: chartHeight - chartBottom,
	}
	var top int64
	for _, s := range c.Series {
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	d.Empty = top == 0
	scaleTop := niceCeil(top)
	plotH := d.Base - chartTop
	// Three horizontal grid lines with their values.
	for i := 1; i <= 3; i++ {
		v := scaleTop * int64(i) / 3
		y := d.Base - plotH*float64(v)/float64(scaleTop)
		d.YTicks = append(d.YTicks, tick{X: chartLeft - 6, Y: round1(y + 4), Label: strconv.FormatInt(v, 10)})
	}
	n := len(c.Labels)
	if n == 0 || len(c.Series) == 0 {
		d.Description = c.Title + ": no data."
		return d
	}
	slot := (d.Right - d.Left) / float64(n)
	barW := slot * 0.8 / float64(len(c.Series))
	var sums []string
	for _, s := range c.Series {
		var sum int64
		for _, v := range s.Values {
			sum += v
		}
		sums = append(sums, fmt.Sprintf("%d %s", sum, s.Name))
	}
	d.Description = fmt.Sprintf("%s, %s to %s: in all %s.", c.Title, c.Labels[0], c.Labels[n-1], joinWords(sums))
	// About six x labels, whatever the number of days.
	every := max(1, (n+5)/6)
	for i, label := range c.Labels {
		x := d.Left + slot*float64(i)
		if i%every == 0 {
			d.XTicks = append(d.XTicks, tick{X: round1(x + slot/2), Y: d.Base + 16, Label: shortLabel(label)})
		}
		for j, s := range c.Series {
			var v int64
			if i < len(s.Values) {
				v = s.Values[i]
			}
			h := plotH * float64(v) / float64(scaleTop)
			d.Bars = append(d.Bars, bar{
				X: round1(x + slot*0.1 + barW*float64(j)), Y: round1(d.Base - h), W: round1(barW), H: round1(h),
				Class: s.Class, Title: fmt.Sprintf("%s: %d %s", label, v, s.Name),
			})
		}
	}
	return d
}

// DailyChart is the chart of pulls, checks and refusals per day over days
// days from since, from the store's daily counts.
func DailyChart(title string, since time.Time, days int, counts []accounts.DailyCount) Chart {
	start := time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)
	labels := make([]string, days)
	index := make(map[string]int, days)
	for i := range days {
		labels[i] = start.AddDate(0, 0, i).Format(time.DateOnly)
		index[labels[i]] = i
	}
	series := []Series{
		{Name: "pulls", Class: "chart-pull", Values: make([]int64, days)},
		{Name: "checks", Class: "chart-check", Values: make([]int64, days)},
		{Name: "refused", Class: "chart-denied", Values: make([]int64, days)},
	}
	byOutcome := map[string]int{accounts.UsagePull: 0, accounts.UsageCheck: 1, accounts.UsageDenied: 2}
	for _, c := range counts {
		i, ok := index[c.Day]
		s, known := byOutcome[c.Outcome]
		if ok && known {
			series[s].Values[i] += c.Count
		}
	}
	return Chart{Title: title, Labels: labels, Series: series}
}

// niceCeil is the top of the y scale for a largest value v: three grid
// steps of 1, 2 or 5 times a power of ten, so that the grid lines are round
// numbers.
func niceCeil(v int64) int64 {
	need := max((v+2)/3, 1) // the step that reaches v in three
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= need {
				return 3 * m * p
			}
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// shortLabel shortens a day to MM-DD; other labels stay.
func shortLabel(s string) string {
	if len(s) == len(time.DateOnly) && s[4] == '-' && s[7] == '-' {
		return s[5:]
	}
	return s
}

func joinWords(w []string) string {
	switch len(w) {
	case 0:
		return ""
	case 1:
		return w[0]
	}
	out := ""
	for i, s := range w {
		switch {
		case i == 0:
			out = s
		case i == len(w)-1:
			out += " and " + s
		default:
			out += ", " + s
		}
	}
	return out
}

// chartID is an element id from a title, for aria-labelledby.
func chartID(title string) string {
	b := []byte("chart-")
	for _, r := range title {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		default:
			if b[len(b)-1] != '-' {
				b = append(b, '-')
			}
		}
	}
	return strings.TrimSuffix(string(b), "-")
}
