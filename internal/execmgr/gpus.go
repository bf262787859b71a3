package execmgr

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
)

// gpuPlan is the GPUs of each executor slot on one host: plan[class][i] are the device IDs
// (nvidia-smi indices) of the class's i-th executor, passed to it as `executor serve --gpus`.
// Only GPU classes have entries; a nil plan assigns nothing (every executor sees every GPU).
type gpuPlan map[protocol.ExecutorClass][][]string

// planGPUs gives each executor of a GPU class on host its own GPUs: slot i of a class gets the
// class's GPUCount consecutive indices, taken from one pool 0..hostGPUs-1 that all GPU classes
// of the host share (classes in protocol.ExecutorClassValues order, so a restart assigns the
// same). Executors that need more GPUs than the host has are a configuration error: sharing
// would let jobs interfere and read each other's GPU memory.
//
// hostGPUs 0 means the count is unknown: allowed only while the host runs at most one GPU
// executor, which then gets every GPU as before (nil plan); setCount says how to give the count.
func planGPUs(host string, classes map[protocol.ExecutorClass]int, reg *hwclass.Registry, hostGPUs int, setCount string) (gpuPlan, error) {
	if reg == nil {
		reg = hwclass.Default()
	}
	var needs []classNeed
	executors, total := 0, 0
	for _, class := range protocol.ExecutorClassValues() {
		n := classes[class]
		if n <= 0 {
			continue
		}
		c, err := reg.Lookup(class)
		if err != nil {
			return nil, fmt.Errorf("execmgr: %s: %w", host, err)
		}
		if !c.HasGPU {
			continue
		}
		needs = append(needs, classNeed{class, n, c.GPUCount})
		executors += n
		total += n * c.GPUCount
	}
	if len(needs) == 0 {
		return nil, nil
	}
	if hostGPUs <= 0 {
		if executors == 1 {
			return nil, nil
		}
		return nil, fmt.Errorf("execmgr: %s runs %d GPU executors (%s) but its GPU count is unknown, so each cannot get its own GPUs; %s",
			host, executors, describeNeeds(needs), setCount)
	}
	plan := gpuPlan{}
	next := 0
	for _, n := range needs {
		if next+n.count*n.perExe > hostGPUs {
			return nil, fmt.Errorf("execmgr: %s has %d GPUs but its executors need %d (%s): the %d executors of %s need %d GPUs and only %d are left; lower their count or give the host's real GPU count (%s)",
				host, hostGPUs, total, describeNeeds(needs),
				n.count, n.class, n.count*n.perExe, hostGPUs-next, setCount)
		}
		slots := make([][]string, n.count)
		for i := range slots {
			for range n.perExe {
				slots[i] = append(slots[i], strconv.Itoa(next))
				next++
			}
		}
		plan[n.class] = slots
	}
	return plan, nil
}

// classNeed is count executors of class at perExe GPUs each.
type classNeed struct {
	class         protocol.ExecutorClass
	count, perExe int
}

// describeNeeds is "2 × spin_up-4min.gpu-24gb at 1 GPU each, …".
func describeNeeds(needs []classNeed) string {
	parts := make([]string, len(needs))
	for i, n := range needs {
		parts[i] = fmt.Sprintf("%d × %s at %d GPU each", n.count, n.class, n.perExe)
	}
	return strings.Join(parts, ", ")
}

// gpuSlots hands out the slots of a gpuPlan: which executor of each GPU class holds which GPUs.
type gpuSlots struct {
	plan gpuPlan
	busy map[protocol.ExecutorClass][]bool
}

func newGPUSlots(plan gpuPlan) *gpuSlots {
	s := &gpuSlots{plan: plan, busy: map[protocol.ExecutorClass][]bool{}}
	for class, slots := range plan {
		s.busy[class] = make([]bool, len(slots))
	}
	return s
}

// assigned says whether executors of class get their own GPUs.
func (s *gpuSlots) assigned(class protocol.ExecutorClass) bool {
	return s != nil && s.plan[class] != nil
}

// take marks a free slot of class busy and returns it with its devices; -1 when all are busy.
func (s *gpuSlots) take(class protocol.ExecutorClass) (int, []string) {
	for i, b := range s.busy[class] {
		if !b {
			s.busy[class][i] = true
			return i, s.plan[class][i]
		}
	}
	return -1, nil
}

// takeSlot marks slot i of class busy if it exists and is free.
func (s *gpuSlots) takeSlot(class protocol.ExecutorClass, i int) bool {
	if s == nil {
		return false
	}
	b := s.busy[class]
	if i < 0 || i >= len(b) || b[i] {
		return false
	}
	b[i] = true
	return true
}

// free marks slot i of class free again; -1 is no slot.
func (s *gpuSlots) free(class protocol.ExecutorClass, i int) {
	if s == nil {
		return
	}
	if b := s.busy[class]; i >= 0 && i < len(b) {
		b[i] = false
	}
}
