package scoring

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// Formula is the formula line WriteTable prints first.
const Formula = "points(miner) = Σ over classes of relative_value × demand × efficiency × penalty × worked_seconds"

// WriteTable prints r so that a person can recompute it: the formula, then one line per
// miner and class with every factor and their product, then one line per miner with its
// points, its share of the total and its u16 weight. Numbers are printed in the shortest
// decimal form that reads back as the same float64, so the arithmetic can be repeated
// exactly.
func WriteTable(w io.Writer, r Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	p("%s\n", Formula)
	p("weight(miner) = round_half_even(points / max_points × 65535); share = points / total_points\n")
	keyed := "weights keyed by hotkey (no metagraph)"
	if r.HasMetagraph {
		keyed = fmt.Sprintf("uids from the metagraph at block %d; unregistered miners get no weight", r.Block)
	}
	p("max_points = %s, total_points = %s, %d miners; %s\n\n", num(r.MaxPoints), num(r.TotalPoints), len(r.Miners), keyed)

	p("miner\tclass\trelative_value\tdemand\tefficiency\tpenalty\tworked_seconds\tproduct\n")
	for _, m := range r.Miners {
		for _, row := range m.Rows {
			p("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Hotkey, row.Class, num(row.RelativeValue), num(row.DemandMultiplier),
				num(row.Efficiency), num(row.PenaltyMultiplier), row.WorkedSeconds, num(row.Product))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	p("\nminer\tuid\tpoints\tshare\tweight\n")
	for _, m := range r.Miners {
		uid := "-"
		if r.HasMetagraph && m.Weighted {
			uid = strconv.Itoa(int(m.UID))
		}
		weight := strconv.Itoa(int(m.Weight))
		if !m.Weighted {
			weight = "- (not registered)"
		}
		p("%s\t%s\t%s\t%s\t%s\n", m.Hotkey, uid, num(m.Points), strconv.FormatFloat(m.Share, 'f', 6, 64), weight)
	}
	return tw.Flush()
}

// num prints v in the shortest decimal form that reads back as v, without an exponent.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
