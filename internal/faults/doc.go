// Package faults runs the whole subnet as containers and breaks it on purpose.
//
// A [Harness] starts `horde chain sim`, a facilitator, validators and miners, each in a
// container of its own on a private Docker network the harness creates, from an image it
// assembles offline from a static horde binary (package jobimage; no registry). The
// facilitator and the first validator keep their state in PostgreSQL when a DSN is given
// (reached through a TCP relay on the network's gateway), the others in SQLite; every role's
// configuration, wallet and data directory is a bind mount of the same path on the host, so
// the harness reads the databases directly. Miners run their executors with the docker
// manager on the host's engine (its socket mounted), as a production miner does. Validators
// value always_on.test work (class_weights) and poll the chain every second, so that they
// set weights in every tempo of its 1 s blocks.
//
// # Faults
//
//   - kill ([Harness.Kill], [Harness.Restart]): `docker kill -s KILL` of a role, started
//     again after the hold;
//   - partition ([Harness.Partition], [Harness.Heal]): a role cut off the whole network
//     (docker network disconnect) and joined again at the same address;
//   - chain: the chain server killed and restarted. It comes back from its genesis file at
//     block 0, and roles ignore heads older than the newest they saw (a real chain never goes
//     back), so the harness brings it to the height a chain that never stopped would have
//     (POST /sim/advance: the head before the kill plus a block a second);
//   - cut ([Harness.Cut], [Harness.Join]): two chosen roles cut from each other only, by an
//     iptables DROP of the other's address in each one's network namespace, entered from the
//     host with `nsenter -t PID -n` (the harness runs as root; the containers get no
//     capability). Both iptables-legacy and iptables-nft work on the kernel this was built on;
//   - slow ([Harness.Slow], [Harness.Unslow]): a role's link made slow and lossy, in its
//     namespace the same way. Where the kernel has netem it is `tc qdisc add dev eth0 root
//     netem delay 200ms loss 5%`. The kernel this was built on has none (6.18 with
//     CONFIG_NET_SCH_NETEM unset, no fq for departure times either, and no loadable
//     modules: "Specified qdisc kind is unknown"), so there the same 200 ms delay and 5%
//     loss are applied to every packet the role sends by the harness itself: an
//     iptables-legacy NFQUEUE rule in the role's namespace hands each packet to a netlink
//     socket the harness opened inside that namespace, which drops 5% of them and lets the
//     rest go 200 ms later (delayQueue; --queue-bypass and fail-open let packets through
//     untouched if the harness is gone or the queue full). Without NFQUEUE either, a slow
//     link is a 1 Mbit/s token bucket (tc tbf) and 5% random loss of what comes in, with
//     no added delay. [Harness.FaultKinds] probes the host at start and says which it uses
//     and why;
//   - engine ([Harness.EngineCut]) and engine-errors ([Harness.EngineFail]): the Docker
//     engine of [EngineTarget] (its miner and executors reach it through a proxy socket the
//     harness holds) dies, every connection dropped and new ones refused; or restarts broken,
//     answering every request with HTTP 500 and the daemon's "no space left on device";
//     fixed after the hold ([Harness.EngineResume]).
//
// Faults fire one after another; every fourth has a second fault on other roles while it
// holds ([PlannedFault.Overlaps]), and both are healed together.
//
// # Schedule and invariants
//
// [Run] drives a seeded random schedule ([NewSchedule]): user jobs from two users while
// faults fire, then heals everything, lets the subnet settle and checks the invariants from
// the databases, the engine and the chain ([Harness.Check]):
//   - every job reaches exactly one final state;
//   - the ledger sums to zero with no negative balance and no credits left on hold;
//   - each user is charged exactly the countersigned worked seconds of its jobs × the price
//     (nothing for the horde's failures);
//   - no executor or job container is left on the engine;
//   - every countersigned work-interval receipt is held exactly once by every validator and
//     none is invented: each one a validator counts is in a miner's database, countersigned,
//     with the same miner and seconds, and each one a miner countersigned is at every
//     validator (the receipts pull reads back the pages a validator missed while down);
//   - the validators agree on each miner's countersigned worked seconds (and with the miner);
//   - weights were set in every tempo in which a validator was up for the whole tempo. The
//     harness samples every validator's last_update on the chain twice a block; a tempo
//     counts when the validator was neither stopped nor cut off (nor the chain, nor the two
//     cut apart) from 10 s before it (3 s for the chain's outages) to its end, after the
//     validator's first weights (there is nothing to weigh before the first countersigned
//     work), and when it passed in real time (not the blocks a chain catch-up produced).
//
// Everything a harness creates carries the label [LabelRun] (or, for the miners' executor and
// job containers, lives under the run's directory) and is removed by [Harness.Close]; [Start]
// first removes the leftovers of earlier runs that were interrupted (runs whose lock file is
// no longer held). Rules and queueing disciplines live in the containers' namespaces and go
// with them.
package faults
