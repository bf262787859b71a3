package scoring

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
)

const (
	classS = protocol.ExecutorClassSpinUp4minGPU24GB // relative value 98
	classL = protocol.ExecutorClassAlwaysOnLLMA6000  // relative value 1
)

// threeMiners is the example: three miners, two classes, demand 1.5 for S and 2 for
// L; miner B is benchmarked at half efficiency on S, miner C is penalised to 0.5 and
// benchmarked at 1.25 on L.
func threeMiners() []Factors {
	return []Factors{
		// Given out of order on purpose: Score sorts.
		{Miner: "miner-c", Class: classL, RelativeValue: 1, DemandMultiplier: 2, Efficiency: 1.25, PenaltyMultiplier: 0.5, WorkedSeconds: 4800},
		{Miner: "miner-a", Class: classS, RelativeValue: 98, DemandMultiplier: 1.5, Efficiency: 1, PenaltyMultiplier: 1, WorkedSeconds: 3600},
		{Miner: "miner-b", Class: classS, RelativeValue: 98, DemandMultiplier: 1.5, Efficiency: 0.5, PenaltyMultiplier: 1, WorkedSeconds: 6000},
		{Miner: "miner-a", Class: classL, RelativeValue: 1, DemandMultiplier: 2, Efficiency: 1, PenaltyMultiplier: 1, WorkedSeconds: 1200},
		{Miner: "miner-c", Class: classS, RelativeValue: 98, DemandMultiplier: 1.5, Efficiency: 1, PenaltyMultiplier: 0.5, WorkedSeconds: 1800},
	}
}

func TestScoreThreeMinersTwoClasses(t *testing.T) {
	// By hand (all products are exact in float64):
	//   A: S 98 × 1.5 × 1    × 1   × 3600 = 529200
	//      L  1 × 2   × 1    × 1   × 1200 =   2400   points 531600 (the largest)
	//   B: S 98 × 1.5 × 0.5  × 1   × 6000 = 441000   points 441000
	//   C: S 98 × 1.5 × 1    × 0.5 × 1800 = 132300
	//      L  1 × 2   × 1.25 × 0.5 × 4800 =   6000   points 138300
	//   total = 1110900
	//   weight A = 65535
	//   weight B = round(441000 / 531600 × 65535) = round(54365.94…) = 54366
	//   weight C = round(138300 / 531600 × 65535) = round(17049.46…) = 17049
	res, err := Score(Inputs{Factors: threeMiners()})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		hotkey   string
		products []float64 // by class name: always_on.llm.a6000 before spin_up-4min.gpu-24gb
		points   float64
		share    float64
		weight   uint16
	}
	wants := []want{
		{"miner-a", []float64{2400, 529200}, 531600, 531600.0 / 1110900, 65535},
		{"miner-b", []float64{441000}, 441000, 441000.0 / 1110900, 54366},
		{"miner-c", []float64{6000, 132300}, 138300, 138300.0 / 1110900, 17049},
	}
	if len(res.Miners) != len(wants) {
		t.Fatalf("%d miners, want %d", len(res.Miners), len(wants))
	}
	for i, w := range wants {
		m := res.Miners[i]
		var products []float64
		for _, r := range m.Rows {
			products = append(products, r.Product)
		}
		if m.Hotkey != w.hotkey || !slices.Equal(products, w.products) || m.Points != w.points ||
			m.Share != w.share || m.Weight != w.weight || !m.Weighted {
			t.Errorf("miner %d = %+v\nwant %+v", i, m, w)
		}
	}
	if res.MaxPoints != 531600 || res.TotalPoints != 1110900 {
		t.Errorf("max %v total %v, want 531600 and 1110900", res.MaxPoints, res.TotalPoints)
	}
	if res.HasMetagraph || res.UIDs != nil || res.Weights != nil {
		t.Errorf("without a metagraph there is no chain vector: %+v", res)
	}
	if got, want := res.WeightsByHotkey(), map[string]uint16{"miner-a": 65535, "miner-b": 54366, "miner-c": 17049}; !maps.Equal(got, want) {
		t.Errorf("WeightsByHotkey = %v, want %v", got, want)
	}

	// The same inputs in another order give the same result.
	in := threeMiners()
	slices.Reverse(in)
	again, err := Score(Inputs{Factors: in})
	if err != nil {
		t.Fatal(err)
	}
	var a, b strings.Builder
	if err := WriteTable(&a, res); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&b, again); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("input order changed the result:\n%s\nvs\n%s", a.String(), b.String())
	}
}

// With a metagraph, only registered miners get a weight, normalised among themselves, and
// the result carries the chain vector in uid order.
func TestScoreWithMetagraph(t *testing.T) {
	mg := &chain.Metagraph{Block: chain.Block{Number: 4200}, Neurons: []chain.Neuron{
		{UID: 0, Hotkey: "validator"},
		{UID: 2, Hotkey: "miner-b"},
		{UID: 5, Hotkey: "miner-a"},
	}}
	res, err := Score(Inputs{Factors: threeMiners(), Metagraph: mg})
	if err != nil {
		t.Fatal(err)
	}
	// C is not registered: max 531600 (A), total 531600 + 441000 = 972600.
	if !slices.Equal(res.UIDs, []chain.UID{2, 5}) || !slices.Equal(res.Weights, []uint16{54366, 65535}) {
		t.Errorf("chain vector %v %v, want [2 5] [54366 65535]", res.UIDs, res.Weights)
	}
	if res.TotalPoints != 972600 || res.MaxPoints != 531600 || res.Block != 4200 {
		t.Errorf("total %v max %v block %d", res.TotalPoints, res.MaxPoints, res.Block)
	}
	c := res.Miners[2]
	if c.Hotkey != "miner-c" || c.Weighted || c.Weight != 0 || c.Share != 0 || c.Points != 138300 {
		t.Errorf("unregistered miner: %+v", c)
	}
	if a := res.Miners[0]; a.UID != 5 || a.Share != 531600.0/972600 {
		t.Errorf("miner-a: %+v", a)
	}
}

func TestScoreNoPoints(t *testing.T) {
	for name, in := range map[string][]Factors{
		"no rows":      nil,
		"zero seconds": {{Miner: "m", Class: classS, RelativeValue: 98, DemandMultiplier: 1, Efficiency: 1, PenaltyMultiplier: 1}},
		"zero value":   {{Miner: "m", Class: protocol.ExecutorClassAlwaysOnTest, DemandMultiplier: 1, Efficiency: 1, PenaltyMultiplier: 1, WorkedSeconds: 600}},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Score(Inputs{Factors: in})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range res.Miners {
				if m.Weight != 0 || m.Share != 0 || m.Points != 0 {
					t.Errorf("%+v, want no points and no weight", m)
				}
			}
			if len(res.WeightsByHotkey()) != 0 {
				t.Errorf("weights %v, want none", res.WeightsByHotkey())
			}
		})
	}
}

func TestScoreBadInput(t *testing.T) {
	good := Factors{Miner: "miner-x", Class: classS, RelativeValue: 98, DemandMultiplier: 1, Efficiency: 1, PenaltyMultiplier: 1, WorkedSeconds: 600}
	with := func(f func(*Factors)) []Factors {
		g := good
		f(&g)
		return []Factors{g}
	}
	for _, tc := range []struct {
		name string
		in   []Factors
		want string // in the error, besides the miner and the class
	}{
		{"NaN demand", with(func(f *Factors) { f.DemandMultiplier = math.NaN() }), "demand multiplier is NaN"},
		{"negative efficiency", with(func(f *Factors) { f.Efficiency = -0.5 }), "efficiency is -0.5"},
		{"infinite penalty", with(func(f *Factors) { f.PenaltyMultiplier = math.Inf(1) }), "penalty multiplier is +Inf"},
		{"negative relative value", with(func(f *Factors) { f.RelativeValue = -1 }), "relative_value is -1"},
		{"negative seconds", with(func(f *Factors) { f.WorkedSeconds = -10 }), "worked_seconds is -10"},
		{"overflow", with(func(f *Factors) { f.RelativeValue, f.DemandMultiplier = 1e300, 1e300 }), "overflows"},
		{"duplicate", []Factors{good, good}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Score(Inputs{Factors: append(threeMiners(), tc.in...)})
			if !errors.Is(err, ErrBadFactor) {
				t.Fatalf("err = %v, want ErrBadFactor", err)
			}
			for _, s := range []string{"miner-x", string(classS), tc.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	_, err := Score(Inputs{Factors: []Factors{{Class: classS, RelativeValue: 1, DemandMultiplier: 1, Efficiency: 1, PenaltyMultiplier: 1}}})
	if !errors.Is(err, ErrBadFactor) {
		t.Errorf("row without a miner: err = %v", err)
	}
}

func TestAssemble(t *testing.T) {
	work := []Work{
		{Miner: "miner-a", Class: classS, WorkedSeconds: 3600},
		{Miner: "miner-b", Class: classL, WorkedSeconds: 1200},
	}
	src := Sources{
		RelativeValues: map[protocol.ExecutorClass]float64{classS: 98, classL: 1},
		Demand:         map[protocol.ExecutorClass]float64{classS: 1.5},
		Efficiency:     map[MinerClass]float64{{"miner-b", classL}: 0.8},
		Penalty:        map[MinerClass]float64{{"miner-a", classS}: 0.9},
	}
	got, err := Assemble(work, src)
	if err != nil {
		t.Fatal(err)
	}
	want := []Factors{
		{Miner: "miner-a", Class: classS, RelativeValue: 98, DemandMultiplier: 1.5, Efficiency: 1, PenaltyMultiplier: 0.9, WorkedSeconds: 3600},
		{Miner: "miner-b", Class: classL, RelativeValue: 1, DemandMultiplier: 1, Efficiency: 0.8, PenaltyMultiplier: 1, WorkedSeconds: 1200},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Assemble = %+v\nwant %+v", got, want)
	}
	delete(src.RelativeValues, classL)
	if _, err := Assemble(work, src); !errors.Is(err, ErrBadFactor) || !strings.Contains(err.Error(), string(classL)) {
		t.Errorf("class without a relative value: err = %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	mg := &chain.Metagraph{Block: chain.Block{Number: 4200}, Neurons: []chain.Neuron{{UID: 2, Hotkey: "miner-b"}, {UID: 5, Hotkey: "miner-a"}}}
	res, err := Score(Inputs{Factors: threeMiners(), Metagraph: mg})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteTable(&b, res); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	if lines[0] != Formula || strings.Count(out, Formula) != 1 {
		t.Errorf("the formula is not the first line, once:\n%s", out)
	}
	for _, want := range [][]string{
		{"max_points = 531600", "total_points = 972600", "block 4200"},
		{"miner", "class", "relative_value", "demand", "efficiency", "penalty", "worked_seconds", "product"},
		{"miner-a", string(classS), "98", "1.5", "1", "1", "3600", "529200"},
		{"miner-b", string(classS), "98", "1.5", "0.5", "1", "6000", "441000"},
		{"miner-c", string(classL), "1", "2", "1.25", "0.5", "4800", "6000"},
		{"miner", "uid", "points", "share", "weight"},
		{"miner-a", "5", "531600", "0.546576", "65535"},
		{"miner-b", "2", "441000", "0.453424", "54366"},
		{"miner-c", "-", "138300", "0.000000", "- (not registered)"},
	} {
		if !hasLine(lines, want) {
			t.Errorf("no line with %q in order:\n%s", want, out)
		}
	}
}

// hasLine reports whether some line holds each of want in order: a want with a space as
// text, any other as a whole field.
func hasLine(lines []string, want []string) bool {
	for _, l := range lines {
		rest, ok := l, true
		for _, w := range want {
			var i int
			if strings.Contains(w, " ") {
				i = strings.Index(rest, w)
			} else {
				i = fieldIndex(rest, w)
			}
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(w):]
		}
		if ok {
			return true
		}
	}
	return false
}

// fieldIndex returns the index of w in s as a whole space-separated field, or -1.
func fieldIndex(s, w string) int {
	for off := 0; ; {
		i := strings.Index(s[off:], w)
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(w)
		if (i == 0 || s[i-1] == ' ') && (end == len(s) || s[end] == ' ') {
			return i
		}
		off = i + 1
	}
}
