package console

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

func TestChartSVG(t *testing.T) {
	c := Chart{
		Title:  `Pulls <per> day & "more"`,
		Labels: []string{"2026-12-01", "2026-12-02", "2026-12-03"},
		Series: []Series{{Name: "pulls", Class: "chart-pull", Values: []int64{3, 0, 7}}, {Name: "checks", Class: "chart-check", Values: []int64{1, 2, 0}}},
	}
	svg := string(c.SVG())
	// Well-formed XML, every text escaped.
	dec := xml.NewDecoder(strings.NewReader(svg))
	var titles []string
	var rects int
	inTitle := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, svg)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			inTitle = v.Name.Local == "title"
			if v.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			if inTitle {
				titles = append(titles, string(v))
			}
		case xml.EndElement:
			inTitle = false
		}
	}
	if rects != 6 {
		t.Errorf("%d bars, want 6", rects)
	}
	want := []string{`Pulls <per> day & "more"`, "2026-12-01: 3 pulls", "2026-12-01: 1 checks", "2026-12-02: 0 pulls", "2026-12-02: 2 checks", "2026-12-03: 7 pulls", "2026-12-03: 0 checks"}
	if strings.Join(titles, "|") != strings.Join(want, "|") {
		t.Errorf("titles %q", titles)
	}
	for _, s := range []string{`role="img"`, `aria-labelledby="chart-pulls-per-day-more-title chart-pulls-per-day-more-desc"`, "in all 10 pulls and 3 checks", `class="chart-pull"`, ">12-01<"} {
		if !strings.Contains(svg, s) {
			t.Errorf("the SVG lacks %q:\n%s", s, svg)
		}
	}
	if strings.Contains(svg, "style=") {
		t.Error("inline style: the CSP forbids it")
	}
}

func TestChartEmpty(t *testing.T) {
	for _, c := range []Chart{{Title: "none"}, DailyChart("quiet", time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC), 7, nil)} {
		svg := string(c.SVG())
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("%s: %v", c.Title, err)
		}
		if !strings.Contains(svg, "nothing yet") {
			t.Errorf("%s: no empty note:\n%s", c.Title, svg)
		}
	}
}

func TestDailyChart(t *testing.T) {
	since := time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
	c := DailyChart("t", since, 3, []accounts.DailyCount{
		{Day: "2026-11-29", Outcome: accounts.UsagePull, Count: 2},
		{Day: "2026-12-01", Outcome: accounts.UsageCheck, Count: 5},
		{Day: "2026-12-01", Outcome: accounts.UsageDenied, Count: 1},
		{Day: "2026-12-09", Outcome: accounts.UsagePull, Count: 9}, // outside
		{Day: "2026-11-30", Outcome: "other", Count: 9},            // unknown outcome
	})
	if strings.Join(c.Labels, ",") != "2026-11-29,2026-11-30,2026-12-01" {
		t.Errorf("labels %v", c.Labels)
	}
	got := [][]int64{c.Series[0].Values, c.Series[1].Values, c.Series[2].Values}
	want := [][]int64{{2, 0, 0}, {0, 0, 5}, {0, 0, 1}}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("values %v, want %v", got, want)
			}
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[int64]int64{0: 3, 1: 3, 3: 3, 4: 6, 7: 15, 10: 15, 31: 60, 100: 150, 151: 300, 1000: 1500} {
		if got := niceCeil(v); got != want || got < v {
			t.Errorf("niceCeil(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestSortTags(t *testing.T) {
	got := sortTags([]string{"1.0", "alpha", "1.10", "latest", "1.9", "2.0-rc1", "v1.2.3", "1.9.1", "beta"})
	want := "latest,v1.2.3,2.0-rc1,1.10,1.9.1,1.9,1.0,beta,alpha"
	if strings.Join(got, ",") != want {
		t.Errorf("%v, want %s", got, want)
	}
}
