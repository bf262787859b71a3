package devnet

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
)

// The whole subnet: a facilitator, several validators and miners, each talking to the others
// over loopback sockets.

// TestPaidJobThroughTheSubnet: the dev user's job goes facilitator → validator → miner →
// executor → Docker and back; the output is the job's, the user pays exactly the seconds the
// validator accounted × the price, and the worked seconds reach every validator's scores
// (through the miner's receipts pages) and the weights each sets on chain.
func TestPaidJobThroughTheSubnet(t *testing.T) {
	d := startDevnet(t, func(c *Config) { c.Validators, c.Miners, c.Facilitator = 2, 2, true })
	ctx := t.Context()
	if len(d.Validators) != 2 || len(d.Miners) != 2 || d.Validators[0].Stake != 3*d.Validators[1].Stake {
		t.Fatalf("%d validators (stakes %d, %d), %d miners; want 2 with the first holding 3× the second's stake, and 2",
			len(d.Validators), d.Validators[0].Stake, d.Validators[1].Stake, len(d.Miners))
	}
	if a, b := d.Miners[0].Spec, d.Miners[1].Spec; a.Manifest.Total() == b.Manifest.Total() || a.Costs[protocol.ExecutorClassAlwaysOnTest] == b.Costs[protocol.ExecutorClassAlwaysOnTest] {
		t.Errorf("the miners offer the same: %+v and %+v", a, b)
	}
	c, err := d.UserClient()
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Balance != DefaultUserCredits || before.User != d.User.Hotkey {
		t.Fatalf("the dev user's account: %+v, want %s with %d", before, d.User.Hotkey, DefaultUserCredits)
	}

	j, err := c.Submit(ctx, d.HelloUserJob("--sleep", "2s", "paid", "job"), "")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if j, err = c.Wait(wctx, j.UUID, nil); err != nil {
		t.Fatal(err)
	}
	if j.Status != "completed" || !strings.Contains(j.Stdout, "hello from horde --sleep 2s paid job") {
		t.Fatalf("the job: %s, stdout %q, result %s", j.Status, j.Stdout, j.Result)
	}
	v := nodeByHotkey(t, d.Validators, j.Validator)

	// The seconds the validator accounted, in the work-interval receipts it signed.
	receipts, err := v.Store.ListReceipts(ctx, store.ReceiptFilter{Type: string(protocol.ReceiptTypeWorkInterval)})
	if err != nil {
		t.Fatal(err)
	}
	var worked int64
	var minerHotkey string
	for _, r := range receipts {
		var p protocol.WorkIntervalReceiptPayload
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Fatal(err)
		}
		worked += int64(p.WorkedSeconds)
		minerHotkey = p.MinerHotkey
	}
	// Whole seconds of the execution the validator saw: about the 2 s the job slept.
	if len(receipts) != 1 || worked < 1 || worked > 3 {
		t.Fatalf("the validator signed %d work intervals for %d s; want one for the 2 s the job slept", len(receipts), worked)
	}
	if j.PricePerSecond != d.Facilitator.Price(protocol.ExecutorClassAlwaysOnTest) || j.PricePerSecond <= 0 {
		t.Errorf("price %d, want the facilitator's %d", j.PricePerSecond, d.Facilitator.Price(protocol.ExecutorClassAlwaysOnTest))
	}
	if j.Charged != worked*j.PricePerSecond {
		t.Errorf("charged %d, want %d accounted seconds × %d", j.Charged, worked, j.PricePerSecond)
	}
	after, err := c.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inStore, err := d.FacilitatorStore.Balance(ctx, store.UserAccount(d.User.Hotkey))
	if err != nil {
		t.Fatal(err)
	}
	if after.Balance != before.Balance-j.Charged || inStore != after.Balance {
		t.Errorf("balance %d (ledger %d) after paying %d of %d", after.Balance, inStore, j.Charged, before.Balance)
	}
	entries, err := d.FacilitatorStore.LedgerEntries(ctx, store.UserAccount(d.User.Hotkey), 100)
	if err != nil {
		t.Fatal(err)
	}
	var net int64
	for _, e := range entries {
		if e.JobUUID == j.UUID {
			net += e.Amount
		}
	}
	if net != -j.Charged {
		t.Errorf("the job's ledger entries sum to %d, want -%d: %+v", net, j.Charged, entries)
	}

	// Every validator pulls the miner's countersigned receipts: both count the work.
	uid := neuronUID(t, d, minerHotkey)
	deadline := time.Now().Add(30 * time.Second)
	for _, node := range d.Validators {
		for {
			if err := d.SyncReceipts(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := node.Validator.Scores(ctx, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(r.Miners, func(m scoring.MinerScore) bool { return m.Hotkey == minerHotkey })
			if i >= 0 && len(r.Miners[i].Rows) == 1 && r.Miners[i].Rows[0].WorkedSeconds == worked {
				if w := r.WeightsByHotkey(); len(w) != 1 || w[minerHotkey] != chain.U16Max {
					t.Errorf("validator %s weights %v, want all of it (%d) on the miner that worked", node.URI, w, chain.U16Max)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %s scores %+v; want %d worked seconds of %s", node.URI, r.Miners, worked, minerHotkey)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// No job container is left once the job ended.
	waitNoContainers(t, d)

	// And each validator sets the weights on chain at its next tempo.
	for _, node := range d.Validators {
		for {
			w, err := d.Chain.Weights(NetUID, chain.Hotkey(node.Hotkey))
			if err != nil {
				t.Fatal(err)
			}
			if len(w) == 1 && w[uid] == chain.U16Max {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %s's weights on chain: %v, want uid %d at %d", node.URI, w, uid, chain.U16Max)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRestartKeepsTheUsersState: a devnet restarted on its data dir keeps the dev user's
// balance, jobs and API key, and does not grant the credits again.
func TestRestartKeepsTheUsersState(t *testing.T) {
	dir := t.TempDir()
	withData := func(c *Config) { c.DataDir, c.Facilitator = dir, true }
	d := startDevnet(t, withData)
	c, err := d.UserClient()
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	j, err := c.Submit(wctx, d.HelloUserJob("--sleep", "1s"), "")
	if err == nil {
		j, err = c.Wait(wctx, j.UUID, nil)
	}
	if err != nil || j.Status != "completed" {
		t.Fatalf("the job: %+v, %v", j, err)
	}
	first, err := c.Account(wctx)
	if err != nil {
		t.Fatal(err)
	}
	key, url, minerAddr := d.User.APIKey, d.FacilitatorURL, d.MinerAddr
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = startDevnet(t, withData)
	if d.User.APIKey != key {
		t.Errorf("API key %q after the restart, want the kept %q", d.User.APIKey, key)
	}
	// The same addresses, unless another process took a port in between.
	if d.FacilitatorURL != url && portFree(strings.TrimPrefix(url, "http://")) {
		t.Errorf("the facilitator serves %s after the restart, %s before", d.FacilitatorURL, url)
	}
	if d.MinerAddr != minerAddr && portFree(minerAddr.String()) {
		t.Errorf("the miner serves %s after the restart, %s before", d.MinerAddr, minerAddr)
	}
	c, err = d.UserClient()
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Account(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Balance != first.Balance || first.Balance != DefaultUserCredits-j.Charged {
		t.Errorf("balance %d after the restart, %d before; want the grant less the job's %d, once", again.Balance, first.Balance, j.Charged)
	}
	page, err := c.Jobs(wctx, nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 1 || page.Jobs[0].UUID != j.UUID || page.Jobs[0].Status != "completed" {
		t.Errorf("the user's jobs after the restart: %+v, want the completed %s", page.Jobs, j.UUID)
	}
	entries, err := d.FacilitatorStore.LedgerEntries(wctx, store.UserAccount(d.User.Hotkey), 100)
	if err != nil {
		t.Fatal(err)
	}
	grants := 0
	for _, e := range entries {
		if e.Kind == "grant" {
			grants++
		}
	}
	if grants != 1 {
		t.Errorf("%d grants in the user's ledger after a restart, want 1", grants)
	}
}

// TestDefaultOffers: miners without a spec differ in executors and costs, each cost below
// the lowest rate a validator publishes, so every class is offered.
func TestDefaultOffers(t *testing.T) {
	c := Config{Miners: 3}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s := c.minerSpec(i)
		if got := s.Manifest.Count(protocol.ExecutorClassAlwaysOnTest); got != i+1 {
			t.Errorf("miner %d offers %d executors, want %d", i, got, i+1)
		}
		if cost := s.Costs[protocol.ExecutorClassAlwaysOnTest]; cost <= 0 || cost >= 0.5 {
			t.Errorf("miner %d's cost %v, want in (0, 0.5): below RewardRate 1 × DemandMin 0.5", i, cost)
		}
	}
	if got := []string{ValidatorDevURI(0), ValidatorDevURI(1), ValidatorDevURI(2), MinerDevURI(0), MinerDevURI(2), MinerDevURI(3)}; !slices.Equal(got,
		[]string{"//Alice", "//Charlie", "//Validator3", "//Bob", "//Eve", "//Miner4"}) {
		t.Errorf("dev URIs %v", got)
	}
	if err := (&Config{Miners: 1, MinerSpecs: make([]MinerSpec, 2)}).setDefaults(); err == nil {
		t.Error("more MinerSpecs than miners: no error")
	}
}

func nodeByHotkey(t *testing.T, nodes []*ValidatorNode, hotkey string) *ValidatorNode {
	t.Helper()
	for _, n := range nodes {
		if n.Hotkey == hotkey {
			return n
		}
	}
	t.Fatalf("no validator %q", hotkey)
	return nil
}

func neuronUID(t *testing.T, d *Devnet, hotkey string) chain.UID {
	t.Helper()
	n, ok := d.Validators[0].metagraph.Neuron(chain.Hotkey(hotkey))
	if !ok {
		t.Fatalf("%s is not in the metagraph", hotkey)
	}
	return n.UID
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) bool {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	lis.Close()
	return true
}

// waitNoContainers waits until no container of d's executors is left.
func waitNoContainers(t *testing.T, d *Devnet) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left, err := d.runtime.Client().ContainerList(t.Context(), container.ListOptions{
			All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelExecutor+"="+d.ExecutorID)),
		})
		if err != nil {
			t.Fatalf("ContainerList: %v", err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d job containers left behind", len(left))
		}
	}
}
