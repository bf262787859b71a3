// Package faults runs the whole subnet as containers and breaks it on purpose.
//
// A [Harness] starts `horde chain sim`, a facilitator, validators and miners, each in a
// container of its own on a private Docker network the harness creates, from an image it
// assembles offline from a static horde binary (package jobimage; no registry). The
// facilitator and the first validator keep their state in PostgreSQL when a DSN is given
// (reached through a TCP relay on the network's gateway), the others in SQLite; every role's
// configuration, wallet and data directory is a bind mount of the same path on the host, so
// the harness reads the databases directly. Miners run their executors with the docker
// manager on the host's engine (its socket mounted), as a production miner does.
//
// Faults ([Harness.Kill], [Harness.Restart], [Harness.Partition], [Harness.Heal]) are
// `docker kill -s KILL` and restart of a role, and a role cut off the network and joined
// again at the same address; the chain is one of the roles, so its server is stopped and
// restarted the same way (it comes back from its genesis file).
//
// [Run] drives a seeded random schedule ([NewSchedule]): user jobs from two users while
// faults fire, then heals everything, lets the subnet settle and checks the invariants from
// the databases and the engine ([Harness.Check]): every job reaches exactly one final state,
// the ledger sums to zero with no negative balance and no credits left on hold, each user is
// charged exactly the countersigned worked seconds of its jobs × the price (nothing for the
// horde's failures), and no executor or job container is left on the engine.
//
// Everything a harness creates carries the label [LabelRun] (or, for the miners' executor and
// job containers, lives under the run's directory) and is removed by [Harness.Close]; [Start]
// first removes the leftovers of earlier runs that were interrupted (runs whose lock file is
// no longer held).
package faults
