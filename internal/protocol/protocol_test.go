package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	aliceSS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
	bobSS58   = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
)

func sampleWorkInterval(validator, miner string) WorkIntervalReceiptPayload {
	ts := func(s string) Timestamp { v, _ := ParseTimestamp(s); return v }
	return WorkIntervalReceiptPayload{
		JobUUID:         "5b0c3c5e-8d6a-4f0e-9a51-3f1f0c2d7e11",
		MinerHotkey:     miner,
		ValidatorHotkey: validator,
		Timestamp:       ts("2026-01-21T13:30:00.250000Z"),
		ExecutorClass:   ExecutorClassSpinUp4minGPU24GB,
		IntervalIndex:   2,
		IntervalStart:   ts("2026-01-21T13:20:00Z"),
		IntervalEnd:     ts("2026-01-21T13:30:00Z"),
		WorkedSeconds:   600,
	}
}

func TestWorkIntervalReceipt(t *testing.T) {
	p := sampleWorkInterval(aliceSS58, bobSS58)
	// Expected bytes produced by Python: json.dumps(payload, sort_keys=True).
	const wantBlob = `{"executor_class": "spin_up-4min.gpu-24gb", "interval_end": "2026-01-21T13:30:00Z", ` +
		`"interval_index": 2, "interval_start": "2026-01-21T13:20:00Z", "job_uuid": ` +
		`"5b0c3c5e-8d6a-4f0e-9a51-3f1f0c2d7e11", "miner_hotkey": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty", ` +
		`"receipt_type": "WorkInterval", "timestamp": "2026-01-21T13:30:00.250000Z", "validator_hotkey": ` +
		`"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "worked_seconds": 600}`
	if got := string(p.BlobForSigning()); got != wantBlob {
		t.Errorf("blob\n got: %s\nwant: %s", got, wantBlob)
	}
	req := V0WorkIntervalReceiptRequest{Payload: p, Signature: "0xab"}
	data, err := Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"message_type":"V0WorkIntervalReceiptRequest","payload":{"job_uuid":` +
		`"5b0c3c5e-8d6a-4f0e-9a51-3f1f0c2d7e11","miner_hotkey":"` + bobSS58 + `","validator_hotkey":"` + aliceSS58 +
		`","timestamp":"2026-01-21T13:30:00.250000Z","receipt_type":"WorkInterval","executor_class":` +
		`"spin_up-4min.gpu-24gb","interval_index":2,"interval_start":"2026-01-21T13:20:00Z","interval_end":` +
		`"2026-01-21T13:30:00Z","worked_seconds":600},"signature":"0xab"}`
	if string(data) != wantJSON {
		t.Errorf("encoding\n got: %s\nwant: %s", data, wantJSON)
	}
	m, err := DecodeValidatorToMiner(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*V0WorkIntervalReceiptRequest); got.Payload != p || got.Signature != "0xab" {
		t.Errorf("round trip: %+v", got)
	}
	for _, u := range []Union{UnionMinerToValidator, UnionMinerToExecutor, UnionExecutorToMiner} {
		if _, err := Decode(u, data); !errors.Is(err, ErrWrongUnion) {
			t.Errorf("%v accepted V0WorkIntervalReceiptRequest: %v", u, err)
		}
	}
	// As a receipt line.
	sig := "0xcd"
	line, err := Encode(Receipt{Payload: p, ValidatorSignature: "0xab", MinerSignature: &sig})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := DecodeReceipt(line)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Payload.ReceiptType() != ReceiptTypeWorkInterval || rc.Payload.(WorkIntervalReceiptPayload) != p {
		t.Errorf("receipt round trip: %+v", rc)
	}
}

func TestClassValuesMessage(t *testing.T) {
	m := V0ClassValuesMessage{RewardRate: 0.125}
	m.ClassValues.Set(string(ExecutorClassSpinUp4minGPU24GB), ClassValue{RelativeValue: 1, Multiplier: 1.25})
	m.ClassValues.Set(string(ExecutorClassAlwaysOnCPU8c16GB), ClassValue{RelativeValue: 0.05, Multiplier: 1e-7})
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"message_type":"V0ClassValuesMessage","class_values":{"spin_up-4min.gpu-24gb":` +
		`{"relative_value":1.0,"multiplier":1.25},"always_on.cpu.8c.16gb":{"relative_value":0.05,` +
		`"multiplier":1e-7}},"reward_rate":0.125}`
	if string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}
	got, err := DecodeValidatorToMiner(data)
	if err != nil {
		t.Fatal(err)
	}
	cv := got.(*V0ClassValuesMessage)
	if r, ok := cv.RewardPerHour(ExecutorClassSpinUp4minGPU24GB); !ok || r != 0.125*1.25 {
		t.Errorf("RewardPerHour = %v, %v", r, ok)
	}
	if _, ok := cv.RewardPerHour(ExecutorClassAlwaysOnTest); ok {
		t.Error("RewardPerHour for an absent class")
	}
	if again, _ := Encode(cv); !bytes.Equal(again, data) {
		t.Errorf("re-encoding differs: %s", again)
	}
	bad := strings.Replace(want, "always_on.cpu.8c.16gb", "gpu.h100", 1)
	if _, err := DecodeValidatorToMiner([]byte(bad)); !errors.Is(err, ErrUnknownEnumValue) ||
		!strings.Contains(err.Error(), "class_values.gpu.h100") {
		t.Errorf("unknown class: %v", err)
	}
}

func TestClassNotOfferedDecline(t *testing.T) {
	m := V0DeclineJobRequest{JobUUID: "j", Reason: JobRejectionReasonClassNotOffered, Message: "no"}
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"message_type":"V0DeclineJobRequest","job_uuid":"j","message":"no",` +
		`"reason":"class_not_offered","receipts":[],"context":null}`
	if string(data) != want {
		t.Errorf("got %s", data)
	}
	got, err := DecodeMinerToValidator(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.(*V0DeclineJobRequest).Reason != JobRejectionReasonClassNotOffered {
		t.Errorf("reason %q", got.(*V0DeclineJobRequest).Reason)
	}
	// The zero value of an open enum encodes as upstream's default.
	data, _ = Encode(V0DeclineJobRequest{JobUUID: "j"})
	if !strings.Contains(string(data), `"reason":"unknown"`) {
		t.Errorf("zero reason: %s", data)
	}
}

func TestFloatFormats(t *testing.T) {
	cases := []struct {
		f        float64
		pydantic string // Rust ryu, as model_dump_json writes
		python   string // repr(), as json.dumps writes (checked with CPython)
	}{
		{3500, "3500.0", "3500.0"},
		{2445.406, "2445.406", "2445.406"},
		{0.0001, "0.0001", "0.0001"},
		{0.00001, "0.00001", "1e-05"},
		{0.000001, "1e-6", "1e-06"},
		{1e16, "1e16", "1e+16"},
		{1e15, "1000000000000000.0", "1000000000000000.0"},
		{1.5e16, "1.5e16", "1.5e+16"},
		{1.5e-7, "1.5e-7", "1.5e-07"},
		{math.Copysign(0, -1), "-0.0", "-0.0"},
		{0, "0.0", "0.0"},
		{0.1, "0.1", "0.1"},
		{123456789012345680, "1.2345678901234568e17", "1.2345678901234568e+17"},
		{1e22, "1e22", "1e+22"},
		{5e-324, "5e-324", "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e308", "1.7976931348623157e+308"},
		{100, "100.0", "100.0"},
		{-2.5e-5, "-0.000025", "-2.5e-05"},
	}
	for _, c := range cases {
		if got := string(appendPydFloat(nil, c.f)); got != c.pydantic {
			t.Errorf("pydantic(%v) = %s, want %s", c.f, got, c.pydantic)
		}
		if got := string(appendPyFloat(nil, c.f)); got != c.python {
			t.Errorf("python(%v) = %s, want %s", c.f, got, c.python)
		}
	}
}

func TestPyJSON(t *testing.T) {
	got, err := pyDumps(nil, pyDict{{"s", "é😀\x7f\x00\x1f\"\\/\u2028 <>&\t\n"}})
	if err != nil {
		t.Fatal(err)
	}
	// CPython: json.dumps({"s": "é😀\x7f\x00\x1f\"\\/\u2028 <>&\t\n"}, sort_keys=True)
	const want = `{"s": "\u00e9\ud83d\ude00\u007f\u0000\u001f\"\\/\u2028 <>&\t\n"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got, err = pyDumps(nil, json.RawMessage(`{"b":[1,2.0,{"z":null,"a":true}],"a":"x","c":-0,"d":1E2}`))
	if err != nil {
		t.Fatal(err)
	}
	const want2 = `{"a": "x", "b": [1, 2.0, {"a": true, "z": null}], "c": 0, "d": 100.0}`
	if string(got) != want2 {
		t.Errorf("got  %s\nwant %s", got, want2)
	}
	if _, err := pyDumps(nil, json.RawMessage(`{"a":1,"a":2}`)); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("duplicate key: %v", err)
	}
}

func TestPydString(t *testing.T) {
	got := string(appendPydString(nil, "a\"b\\c\n\r\t\b\f\x01\x1b\x7f é😀 <>& \u2028 \xff"))
	const want = `"a\"b\\c\n\r\t\b\f\u0001\u001b` + "\x7f é😀 <>& \u2028 \uFFFD" + `"`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestTimestamp(t *testing.T) {
	cases := []struct{ in, out string }{
		{"2026-01-21T13:18:47Z", "2026-01-21T13:18:47Z"},
		{"2026-01-21T13:18:47.123456Z", "2026-01-21T13:18:47.123456Z"},
		{"2026-01-21T13:18:47.12Z", "2026-01-21T13:18:47.120000Z"},
		{"2026-01-21T13:18:47.000000Z", "2026-01-21T13:18:47Z"},
		{"2026-01-21T13:18:47.1234567Z", "2026-01-21T13:18:47.123456Z"},
		{"2026-01-21T13:18:47+00:00", "2026-01-21T13:18:47Z"},
		{"2026-01-21 13:18:47z", "2026-01-21T13:18:47Z"},
		{"2026-01-21T15:18:47.5+02:00", "2026-01-21T15:18:47.500000+02:00"},
		{"2026-01-21T10:48:47-02:30", "2026-01-21T10:48:47-02:30"},
	}
	for _, c := range cases {
		ts, err := ParseTimestamp(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if ts.String() != c.out {
			t.Errorf("%s → %s, want %s", c.in, ts, c.out)
		}
	}
	for _, bad := range []string{"", "2026-01-21", "2026-01-21T13:18:47", "2026-02-30T00:00:00Z",
		"2026-01-21T25:00:00Z", "2026-01-21T13:18:47.Z", "2026-01-21T13:18:47+0200", "x026-01-21T13:18:47Z",
		"2026-01-21T13:18:47Zjunk"} {
		if _, err := ParseTimestamp(bad); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%q: err %v, want ErrInvalidValue", bad, err)
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	if got := NewTimestamp(now).String(); got != "2026-01-02T02:04:05.123456Z" {
		t.Errorf("NewTimestamp: %s", got)
	}
	var ts Timestamp
	if err := json.Unmarshal([]byte(`"2026-01-21T13:18:47.5Z"`), &ts); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(ts); string(b) != `"2026-01-21T13:18:47.500000Z"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestOrderedMap(t *testing.T) {
	var m OrderedMap[string]
	m.Set("b", "1")
	m.Set("a", "2")
	m.Set("b", "3")
	if got := m.Keys(); strings.Join(got, ",") != "b,a" {
		t.Errorf("keys %v", got)
	}
	if v, ok := m.Get("b"); !ok || v != "3" {
		t.Errorf("Get b = %q %v", v, ok)
	}
	data, err := json.Marshal(m)
	if err != nil || string(data) != `{"b":"3","a":"2"}` {
		t.Errorf("marshal %s %v", data, err)
	}
	var back OrderedMap[string]
	if err := json.Unmarshal([]byte(`{"z":"1","y":"2","x":"3"}`), &back); err != nil {
		t.Fatal(err)
	}
	if strings.Join(back.Keys(), "") != "zyx" {
		t.Errorf("order lost: %v", back.Keys())
	}
	if err := json.Unmarshal([]byte(`{"z":"1","z":"2"}`), &back); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("duplicate: %v", err)
	}
	// Many keys switch duplicate detection to a set.
	var sb strings.Builder
	sb.WriteString("{")
	for i := 0; i < 100; i++ {
		sb.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	sb.WriteString(`"kaa":2}`)
	var big OrderedMap[int]
	if err := json.Unmarshal([]byte(sb.String()), &big); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("duplicate in big map: %v", err)
	}
	if !m.Delete("b") || m.Len() != 1 || m.Delete("b") {
		t.Error("Delete")
	}
	// A value type without a native codec goes through encoding/json.
	type point struct{ X, Y int }
	pm := OrderedMapOf(Entry[point]{"p", point{1, 2}})
	data, err = json.Marshal(pm)
	if err != nil || string(data) != `{"p":{"X":1,"Y":2}}` {
		t.Errorf("generic marshal %s %v", data, err)
	}
	var pm2 OrderedMap[point]
	if err := json.Unmarshal(data, &pm2); err != nil {
		t.Fatal(err)
	}
	if v, _ := pm2.Get("p"); v != (point{1, 2}) {
		t.Errorf("generic unmarshal %+v", v)
	}
	n := 0
	for k, v := range pm2.All() {
		n++
		if k != "p" || v.X != 1 {
			t.Error("All")
		}
	}
	if n != 1 {
		t.Error("All count")
	}
}

func TestDecoderLimit(t *testing.T) {
	frame := []byte(`{"message_type":"V0AcceptJobRequest","job_uuid":"x"}`)
	d := Decoder{MaxFrameSize: len(frame) - 1}
	if _, err := d.Decode(UnionMinerToValidator, frame); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("got %v", err)
	}
	d.MaxFrameSize = len(frame)
	if _, err := d.Decode(UnionMinerToValidator, frame); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	if _, err := d.DecodeReceipt(append(frame, ' ')); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("receipt over the limit: %v", err)
	}
	if _, err := d.DecodeResponse(append(frame, ' ')); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("response over the limit: %v", err)
	}
}

func TestEncodeInvalid(t *testing.T) {
	cases := map[string]Message{
		"nil pointer":       (*V0JobRequest)(nil),
		"bad class":         V0AcceptJobRequest{JobUUID: "x"}, // valid; replaced below
		"empty volume":      V0JobRequest{ExecutorClass: DefaultExecutorClass, DockerRunOptionsPreset: DockerRunOptionsPresetNone, Volume: &Volume{}},
		"two volumes":       V0JobRequest{ExecutorClass: DefaultExecutorClass, DockerRunOptionsPreset: DockerRunOptionsPresetNone, Volume: &Volume{Inline: &InlineVolume{}, ZipURL: &ZipURLVolume{}}},
		"nested multi":      V0JobRequest{ExecutorClass: DefaultExecutorClass, DockerRunOptionsPreset: DockerRunOptionsPresetNone, Volume: &Volume{Multi: &MultiVolume{Volumes: []Volume{{Multi: &MultiVolume{}}}}}},
		"zip in uploads":    V0JobRequest{ExecutorClass: DefaultExecutorClass, DockerRunOptionsPreset: DockerRunOptionsPresetNone, OutputUpload: &OutputUpload{Multi: &MultiUpload{Uploads: []OutputUpload{{ZipAndHTTPPut: &ZipAndHTTPPutUpload{}}}}}},
		"unknown class":     V0JobRequest{ExecutorClass: "gpu.h100", DockerRunOptionsPreset: DockerRunOptionsPresetNone},
		"unknown preset":    V0JobRequest{ExecutorClass: DefaultExecutorClass},
		"bad context":       V0JobFailedRequest{JobUUID: "x", Context: json.RawMessage(`[1]`)},
		"invalid raw":       V0JobFailedRequest{JobUUID: "x", Context: json.RawMessage(`{"a":}`)},
		"manifest key":      V0ExecutorManifestRequest{Manifest: Manifest{{"gpu.h100", 1}}},
		"manifest twice":    V0ExecutorManifestRequest{Manifest: Manifest{{ExecutorClassAlwaysOnTest, 1}, {ExecutorClassAlwaysOnTest, 2}}},
		"no receipt":        Receipt{},
		"NaN":               V0ClassValuesMessage{RewardRate: math.NaN()},
		"single patterns 2": V0InitialJobRequest{ExecutorClass: DefaultExecutorClass, JobStartedReceiptPayload: JobStartedReceiptPayload{ExecutorClass: DefaultExecutorClass}, Volume: &Volume{Huggingface: &HuggingfaceVolume{AllowPatterns: &AllowPatterns{Single: true, Patterns: []string{"a", "b"}}}}},
	}
	delete(cases, "bad class")
	for name, m := range cases {
		if _, err := Encode(m); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Encode(nil); err == nil {
		t.Error("nil message: no error")
	}
}

func TestValidateExecutorToken(t *testing.T) {
	if err := ValidateExecutorToken("7a4c0f5e-2d3b-4e8a-9c61-0b5f3e2d1a94-f0e1d2c3-b4a5-4697-8899-aabbccddeeff"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", strings.Repeat("a", 74), "a/b", "a b"} {
		if ValidateExecutorToken(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
